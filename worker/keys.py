"""Every Redis key, queue name and job name, in one place."""

from __future__ import annotations

import hashlib
from typing import Literal

EndpointClass = Literal["collect", "search", "bulk"]
ENDPOINT_CLASSES: tuple[EndpointClass, ...] = ("collect", "search", "bulk")

PREFIX = "es"

# The queue (an arq sorted set) every worker takes jobs from
JOB_QUEUE = f"{PREFIX}:queue:jobs"

# Set when the upstream answered 402: no worker calls it until a run is resumed.
CREDITS_EXHAUSTED = f"{PREFIX}:credits_exhausted"

# Job function names, as registered with the queue
COLLECT_JOB = "collect"
SEARCH_PAGE_JOB = "search_page"
BULK_REQUEST_JOB = "bulk_request"
BULK_SEARCH_JOB = "bulk_search"
FEEDER_JOB = "feeder_tick"
FEEDER_EVERY_S = 5
RECONCILER_JOB = "reconciler_tick"
RECONCILER_EVERY_S = 3


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for an API key: keys and logs must never hold the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def limiter_tat_key(api_key: str, endpoint_class: EndpointClass) -> str:
    return f"{PREFIX}:limiter:{key_fingerprint(api_key)}:{endpoint_class}:tat"


def limiter_cooldown_key(api_key: str, endpoint_class: EndpointClass) -> str:
    return f"{PREFIX}:limiter:{key_fingerprint(api_key)}:{endpoint_class}:cooldown"


def limiter_margin_key(api_key: str, endpoint_class: EndpointClass) -> str:
    """The fleet's adaptive safety margin for the bucket (a hash; see worker/gcra.lua)."""
    return f"{PREFIX}:limiter:{key_fingerprint(api_key)}:{endpoint_class}:margin"


def limiter_jitter_key(api_key: str, endpoint_class: EndpointClass) -> str:
    """Each worker process's latest jitter report for the bucket (a hash, reporter id -> spread)."""
    return f"{PREFIX}:limiter:{key_fingerprint(api_key)}:{endpoint_class}:jitter"


def run_counts_key(run_id: str) -> str:
    return f"{PREFIX}:run:{run_id}:counts"


def run_done_key(run_id: str) -> str:
    """Hash item key -> outcome of the items already counted for a run (an at-least-once re-run is
    counted once)."""
    return f"{PREFIX}:run:{run_id}:outcomes"


def waiters_key(item_key: str) -> str:
    """Runs waiting for another run's job to collect this item (their feeder found it queued)."""
    return f"{PREFIX}:waiters:{item_key}"


def item_done_key(item_key: str) -> str:
    """The outcome of the job that just finished this item, kept a minute for late waiters."""
    return f"{PREFIX}:item_done:{item_key}"


def collect_job_id(item_key: str) -> str:
    """Deterministic job id: the same employee is never queued twice at once."""
    return f"collect:{item_key}"


def item_of_collect_job(job_id: str) -> str | None:
    """The item key of a collect job id (None for other jobs)."""
    prefix = "collect:"
    return job_id[len(prefix) :] if job_id.startswith(prefix) else None


def search_page_job_id(run_id: str, page_no: int) -> str:
    """One job per (run, page): a page can be fetched twice only while its job is in flight."""
    return f"search:{run_id}:{page_no}"


def bulk_request_job_id(row_id: str) -> str:
    """One job per data request (a ledger row): it submits, polls (deferring itself), ingests."""
    return f"bulk:{row_id}"


def bulk_search_job_id(run_id: str) -> str:
    """One job per bulk search run: count, then plan (paging the ids first when over 10,000)."""
    return f"bulksearch:{run_id}"


def stash_key(item_key: str) -> str:
    """A collected profile whose write to MongoDB failed, kept so the retry does not pay again."""
    return f"{PREFIX}:stash:{item_key}"


def job_starts_key(job_id: str) -> str:
    """Starts of a job not matched by an end: each one left over is a worker that died running it."""
    return f"{PREFIX}:job_starts:{job_id}"
