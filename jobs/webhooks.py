"""Webhook notices in, refreshes out: the inbox is expanded into ordinary runs of kind `webhook`.

Receipt (`receive`, called by the API): the raw body goes into the MongoDB inbox first; only then
does the receiver answer 202. An expand job per inbox entry is queued as a courtesy (priority);
if that fails, or the API process dies right after answering, the periodic `webhook_tick` finds
the entry still pending and queues it. So a stored notice is always processed.

Expansion (`expand`): the entry's notices claim their (member, status, week) keys; ids another
delivery claimed this week are dropped as duplicates, ids we do not mirror are dropped unless the
subscription collects unknown ids, ids synced within WEBHOOK_FRESH_WINDOW_S are skipped (no
credit twice), and the rest become one run of kind `webhook`: stored inputs, progress, metrics
and the dead-letter work as for any run, and its collect jobs go through the same limiter, credits
gate and sink, queued with priority ahead of ordinary runs. An id already queued by another run is
coalesced (the feeder's waiters), never queued twice. A batch the planner (`jobs.planner`) sends
by bulk (BULK_MIN_ITEMS or more ids to refresh) becomes a bulk run instead, made by the same
producer as `enqueue ids --via bulk` (`jobs.producers.enqueue_lines`), with source
`webhook:<subscription>`: one data request per BULK_REQUEST_IDS ids, no collect slots used.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog

from jobs.feeder import enqueue_items
from jobs.planner import plan_items
from jobs.producers import Intake, enqueue_lines, list_as_lines
from jobs.runs import create_run, finish_if_complete
from jobs.webhook_notices import Notice, inbox_id, notice_key, parse_notices, status_label
from worker import keys
from worker.errors import TransientError
from worker.queue import JobSpec
from worker.run_model import FeedCursor, RunKind, RunState, utcnow
from worker.runtime import Services, WorkerContext
from worker.store.base import Doc
from worker.store.webhooks import EXPANDED

log = structlog.get_logger("employee_sync.webhooks")

_STARTABLE = frozenset({RunState.ENQUEUEING})
# Notice keys outlive the week they name by this long, then they are pruned.
NOTICE_KEY_TTL = timedelta(days=15)


@dataclass(frozen=True, slots=True)
class Receipt:
    inbox_id: str
    notices: int
    duplicate: bool


async def receive(services: Services, subscription: Doc, body: bytes, notices: list[Notice]) -> Receipt:
    """Store a validated body in the inbox (durable before the caller answers), queue its expansion."""
    entry = inbox_id(str(subscription["_id"]), body)
    stored = await services.store.webhooks.receive(
        entry, str(subscription["_id"]), body, len(notices), utcnow()
    )
    metrics = services.metrics.webhooks
    if not stored:
        metrics.duplicates.labels("body").inc()
        return Receipt(entry, len(notices), duplicate=True)
    for notice in notices:
        metrics.notices.labels(status_label(notice.status)).inc()
    with contextlib.suppress(TransientError):  # stored is what matters: the sweep queues it otherwise
        await queue_expansions(services, [entry])
    return Receipt(entry, len(notices), duplicate=False)


async def queue_expansions(services: Services, entries: list[str]) -> int:
    specs = [JobSpec(keys.webhook_expand_job_id(entry), (entry,)) for entry in entries]
    added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.WEBHOOK_EXPAND_JOB, specs, priority=True)
    return added.count(True)


async def webhook_expand(ctx: WorkerContext, entry_id: str) -> str:
    return await expand(ctx["services"], entry_id)


async def expand(services: Services, entry_id: str) -> str:
    """Turn one inbox entry into a refresh run (or nothing); safe to run twice."""
    store = services.store
    entry = await store.webhooks.inbox_entry(entry_id)
    if entry is None or entry.state == EXPANDED:
        return "skipped: expanded already"
    subscription = await store.webhooks.subscription(entry.subscription_id) or {}
    notices = parse_notices(entry.body, max_notices=max(1, len(entry.body)))  # validated on receipt
    now = utcnow()
    by_key = {notice_key(n, entry.received_at): n.member_id for n in notices}
    own = await store.webhooks.claim_notices(entry_id, list(by_key), now)
    services.metrics.webhooks.duplicates.labels("notice").inc(len(by_key) - len(own))
    ids = sorted({by_key[key] for key in own})
    ids = await _wanted_ids(services, subscription, ids, entry.received_at)
    run_id = await start_refresh(services, ids, source=f"webhook:{entry.subscription_id}") if ids else None
    await store.webhooks.mark_expanded(entry_id, run_id, utcnow())
    log.info("webhook.expanded", inbox_id=entry_id, notices=len(notices), refreshing=len(ids), run_id=run_id)
    return f"expanded: {len(ids)} to refresh of {len(notices)} notices"


async def _wanted_ids(
    services: Services, subscription: Doc, ids: list[int], received_at: datetime
) -> list[int]:
    """Drop ids we do not mirror (unless the subscription collects them) and ids synced after the
    notice arrived (or within WEBHOOK_FRESH_WINDOW_S before it): those copies already hold the news."""
    employees = services.store.employees
    if not subscription.get("collect_unknown", False):
        mirrored = await employees.fresh_ids(ids, synced_since=datetime.min.replace(tzinfo=UTC))
        ids = [i for i in ids if i in mirrored]
    window = timedelta(seconds=services.settings.webhook_fresh_window_s)
    if ids:
        fresh = await employees.fresh_ids(ids, synced_since=received_at - window)
        ids = [i for i in ids if i not in fresh]
    return ids


async def start_refresh(services: Services, ids: list[int], *, source: str) -> str:
    """A run refreshing these ids; returns its id. The planner picks the path: below BULK_MIN_ITEMS
    a `webhook` run whose collect jobs are queued with priority at once, else a bulk run."""
    # `fresh` is 0: `_wanted_ids` already dropped the copies that hold the news. FRESHNESS_TTL_S
    # must not skip anything here: a notice says the mirror's copy is out of date.
    if plan_items(services.settings, "ids", len(ids), 0, "auto").choice == "bulk":
        return await refresh_via_bulk(services, ids, source=source)
    run = await create_run(services, RunKind.WEBHOOK, source)
    items = [f"id:{i}" for i in ids]
    size = services.settings.input_chunk_size
    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    for seq, chunk in enumerate(chunks):
        await services.store.runs.save_inputs(run.run_id, seq, chunk)
    await services.store.runs.publish_inputs(
        run.run_id, accepted=len(items), rejected=0, duplicates=0, sample=[]
    )
    await services.store.runs.move(run.run_id, RunState.RUNNING, only_from=_STARTABLE)
    processed, accepted = await services.progress.set_accepted(run.run_id, len(items))
    # A webhook batch is bounded (WEBHOOK_MAX_NOTICES), so it skips the feeder's window: its jobs
    # go straight in, ahead of ordinary runs. The cursor is then marked done; if the run is
    # paused and resumed the feeder re-feeds what is left (still with priority).
    await enqueue_items(services, run.run_id, items, priority=True)
    await services.store.runs.save_feed_cursor(
        run.run_id, FeedCursor(seq=len(chunks), offset=0, done=True, epoch=0)
    )
    await finish_if_complete(services, run.run_id, processed, accepted)
    return run.run_id


async def refresh_via_bulk(services: Services, ids: list[int], *, source: str) -> str:
    """A bulk run over these ids (one id_file data request per BULK_REQUEST_IDS), made by the
    producer every bulk id run comes from; returns its id. Credits: one per record delivered, as
    by collect; an id the API no longer has is not delivered, so it costs nothing (`not_found`)."""
    lines = list_as_lines(ids)
    receipt = await enqueue_lines(services, lines, "ids", source=source, intake=Intake(bulk=True))
    return receipt.run_id


async def webhook_tick(ctx: WorkerContext) -> str:
    """Periodic: queue every pending inbox entry's expansion, observe finished refreshes' lag."""
    services = ctx["services"]
    pending = await services.store.webhooks.pending()
    queued = await queue_expansions(services, pending) if pending else 0
    observed = await observe_lag(services)
    now = utcnow()
    await services.store.webhooks.prune_notices(now - NOTICE_KEY_TTL)
    retention = timedelta(days=services.settings.changes_retention_days)
    pruned = await services.store.changes.prune(now - retention)
    return f"queued {queued} expansions, {observed} lags, pruned {pruned} changes"


async def warn_silent(services: Services, now: datetime) -> int:
    """Log (and count) subscriptions that delivered nothing for longer than cadence + slack; the
    `subscription_silent` gauge says the same at every scrape."""
    silent = 0
    for sub in await services.store.webhooks.subscriptions():
        last = sub.get("last_delivery_at") or sub.get("created_at")
        limit_s = float(sub.get("silence_after_s") or 0)
        if isinstance(last, datetime) and limit_s and (now - last).total_seconds() > limit_s:
            silent += 1
            log.warning("subscription.silent", subscription=sub["_id"], last_delivery_at=last.isoformat())
    return silent


async def observe_lag(services: Services) -> int:
    observed = 0
    for entry_id, received_at, run_id in await services.store.webhooks.lag_unrecorded():
        run = await services.store.runs.get(run_id)
        if run is None or run.state is not RunState.FINISHED or run.finished_at is None:
            continue
        services.metrics.webhooks.lag.observe(max(0.0, (run.finished_at - received_at).total_seconds()))
        await services.store.webhooks.lag_recorded(entry_id)
        observed += 1
    return observed


async def replay(services: Services, since: datetime | None) -> int:
    """Re-expand inbox entries received since `since` (all: None); returns how many."""
    entries = await services.store.webhooks.reopen_since(since)
    for entry in entries:
        await expand(services, entry)
    return len(entries)
