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
# Bumped by every resume that reopens the API: a 402 to a request sent before it is stale.
CREDITS_EPOCH = f"{PREFIX}:credits_epoch"

# Job function names, as registered with the queue
COLLECT_JOB = "collect"
SEARCH_PAGE_JOB = "search_page"
BULK_REQUEST_JOB = "bulk_request"
BULK_SEARCH_JOB = "bulk_search"
FEEDER_JOB = "feeder_tick"
FEEDER_EVERY_S = 5
RECONCILER_JOB = "reconciler_tick"
RECONCILER_EVERY_S = 3
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


def webhook_expand_job_id(inbox_id: str) -> str:
    """One expand job per inbox entry: a sweep re-finding it while it is queued adds nothing."""
    return f"webhook:expand:{inbox_id}"


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


# --- Fleet-wide live figures for the dashboard (worker.fleet_stats writes them, worker.fleet_view reads).
# Short-lived by design: the history that matters (runs, syncs, changes) lives in MongoDB.
FLEET_PREFIX = f"{PREFIX}:fleet"
FLEET_WORKERS = f"{FLEET_PREFIX}:workers"  # hash worker id -> JSON heartbeat
FLEET_CREDITS = f"{FLEET_PREFIX}:credits"  # hash: remaining, at_s (the last x-credits-remaining)
FLEET_CREDIT_SAMPLES = f"{FLEET_PREFIX}:credits:samples"  # zset at_s -> "at_s:remaining:worker"


def fleet_grants_prefix(endpoint_class: str) -> str:
    """Per-minute hashes second-of-epoch -> slots granted fleet-wide in that second: prefix + minute."""
    return f"{FLEET_PREFIX}:grants:{endpoint_class}:"


def fleet_429_prefix(endpoint_class: str) -> str:
    """Per-minute counters of upstream 429 answers fleet-wide: prefix + minute."""
    return f"{FLEET_PREFIX}:429:{endpoint_class}:"


def fleet_waits_prefix(endpoint_class: str) -> str:
    """Per-minute lists of limiter waits (seconds) sampled for p50/p95: prefix + minute."""
    return f"{FLEET_PREFIX}:waits:{endpoint_class}:"


def fleet_grants_key(endpoint_class: str, minute: int) -> str:
    return f"{fleet_grants_prefix(endpoint_class)}{minute}"


def fleet_429_key(endpoint_class: str, minute: int) -> str:
    return f"{fleet_429_prefix(endpoint_class)}{minute}"


def fleet_waits_key(endpoint_class: str, minute: int) -> str:
    return f"{fleet_waits_prefix(endpoint_class)}{minute}"


def fleet_cooldown_key(endpoint_class: str) -> str:
    """A copy of the limiter's cool-down end (µs, Redis time) while one is active; expires with it."""
    return f"{FLEET_PREFIX}:cooldown:{endpoint_class}"


# Syncs: the scheduler's lease (one planner fleet-wide) and the credit budgets per period.
SYNC_SCHEDULER_LEASE = f"{PREFIX}:sync:scheduler"


def sync_credits_key(sync_name: str, period: int) -> str:
    """Collect credits a sync's ticks planned in one budget period (a day by default)."""
    return f"{PREFIX}:sync:credits:{period}:{sync_name}"


def sync_global_credits_key(period: int) -> str:
    return f"{PREFIX}:sync:credits:{period}:*all*"
