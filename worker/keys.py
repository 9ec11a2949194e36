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
FEEDER_JOB = "feeder_tick"
FEEDER_EVERY_S = 5
# Webhooks: one expand job per inbox entry; a periodic sweep (pending entries, lag) and renewer.
WEBHOOK_EXPAND_JOB = "webhook_expand"
WEBHOOK_TICK_JOB = "webhook_tick"
WEBHOOK_TICK_EVERY_S = 5
SUBSCRIPTIONS_TICK_JOB = "subscriptions_tick"
SUBSCRIPTIONS_TICK_EVERY_S = 60
# Held by the one process renewing subscriptions (upstream allows 9 subscription calls a minute).
SUBSCRIPTIONS_LEASE = f"{PREFIX}:subscriptions:renewer:lease"


def key_fingerprint(api_key: str) -> str:
    """A stable, non-reversible name for an API key: keys and logs must never hold the key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


def limiter_tat_key(api_key: str, endpoint_class: EndpointClass) -> str:
    return f"{PREFIX}:limiter:{key_fingerprint(api_key)}:{endpoint_class}:tat"


def limiter_cooldown_key(api_key: str, endpoint_class: EndpointClass) -> str:
    return f"{PREFIX}:limiter:{key_fingerprint(api_key)}:{endpoint_class}:cooldown"


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


def webhook_expand_job_id(inbox_id: str) -> str:
    """One expand job per inbox entry: a sweep re-finding it while it is queued adds nothing."""
    return f"webhook:expand:{inbox_id}"


def search_page_job_id(run_id: str, page_no: int) -> str:
    """One job per (run, page): a page can be fetched twice only while its job is in flight."""
    return f"search:{run_id}:{page_no}"


def stash_key(item_key: str) -> str:
    """A collected profile whose write to MongoDB failed, kept so the retry does not pay again."""
    return f"{PREFIX}:stash:{item_key}"


def job_starts_key(job_id: str) -> str:
    """Starts of a job not matched by an end: each one left over is a worker that died running it."""
    return f"{PREFIX}:job_starts:{job_id}"
