"""The feeder: keeps the queue topped up to QUEUE_WINDOW collect jobs from the runs' stored inputs.

Runs keep their inputs in MongoDB (chunk documents); the queue only ever holds a bounded window of
jobs, so a million-item run costs Redis a window, not a million jobs. Each feed splits the free room
equally between the running runs (round robin), so a small run started during a huge one gets its
share at once and finishes in time proportional to its own size.

Fed by: producers right after storing inputs, collect jobs when the queue runs low, search page
jobs after storing a page, and a periodic job as a safety net. One feeder at a time (a Redis lock).
Items already counted for the run are skipped, so a rewound cursor (pause, resume) is harmless.
The cursor is saved after every chunk with a compare-and-set on the run's feed epoch, so a walk
over a long rewound run makes progress even if it is cut short, and a feed that started before a
rewind cannot write its stale position back over it.
"""

from __future__ import annotations

import structlog

from jobs.runs import finish_if_complete
from worker import keys
from worker.queue import JobSpec
from worker.run_model import COUNTER_SHARED, FeedCursor, Run, RunKind
from worker.runtime import Services, WorkerContext

log = structlog.get_logger("employee_sync.feeder")

FEEDER_LOCK = f"{keys.PREFIX}:feeder:lock"
LOCK_TTL_MS = 15_000
# A feed call walks at most this many chunks per run, so one call stays well inside the lock and
# a job's deadline however many counted items a rewound cursor has to skip; the next call goes on.
MAX_CHUNKS_PER_WALK = 20


async def feed(services: Services) -> int:
    """Top the queue up to the window; returns the number of collect jobs added."""
    token = await services.queue.try_lock(FEEDER_LOCK, LOCK_TTL_MS)
    if token is None:
        return 0  # another feeder is at it
    try:
        room = services.settings.queue_window - await services.queue.depth(keys.JOB_QUEUE)
        pending = await services.store.runs.feedable() if room > 0 else []
        added = 0
        while room > 0 and pending:
            share = max(1, room // len(pending))
            still_hungry = []
            for run in pending:
                got, more = await _feed_run(services, run, min(share, room))
                added, room = added + got, room - got
                if more and got == share:
                    fresh = await services.store.runs.get(run.run_id)
                    if fresh is not None:
                        still_hungry.append(fresh)
            pending = still_hungry
        return added
    finally:
        await services.queue.unlock(FEEDER_LOCK, token)


async def maybe_feed(services: Services) -> None:
    """Called after each collect job: refill when the queue is down to half the window."""
    if await services.queue.depth(keys.JOB_QUEUE) <= services.settings.queue_window // 2:
        await feed(services)


async def feeder_tick(ctx: WorkerContext) -> str:
    """The periodic safety net (e.g. after a resume while no job was running)."""
    return f"fed {await feed(ctx['services'])}"


async def _feed_run(services: Services, run: Run, want: int) -> tuple[int, bool]:
    """Enqueue up to `want` uncounted items of one run. Returns (jobs added, more inputs may follow)."""
    cursor = FeedCursor(run.feed.seq, run.feed.offset, False, run.feed.epoch)
    added, walked = 0, 0
    while added < want and walked < MAX_CHUNKS_PER_WALK:
        chunk = await services.store.runs.input_chunk(run.run_id, cursor.seq)
        if chunk is None:
            cursor.done = run.inputs_complete
            await services.store.runs.save_feed_cursor(run.run_id, cursor)
            return added, False
        walked += 1
        items, cursor.offset = await _uncounted(services, run.run_id, chunk, cursor.offset, want - added)
        if cursor.offset >= len(chunk):
            cursor.seq, cursor.offset = cursor.seq + 1, 0
        # Enqueue before moving the cursor: a failure in between re-feeds (deduplicated by job id)
        # rather than skips. Jobs queued for a run paused meanwhile find it paused and are not counted.
        # Webhook refreshes go ahead of ordinary runs' jobs (a notice is news; a sweep can wait).
        added += await enqueue_items(services, run.run_id, items, priority=run.kind is RunKind.WEBHOOK)
        if not await services.store.runs.save_feed_cursor(run.run_id, cursor):
            return added, False  # rewound or no longer running meanwhile: the next feed starts over
    return added, True


async def _uncounted(
    services: Services, run_id: str, chunk: list[str], offset: int, want: int
) -> tuple[list[str], int]:
    """Up to `want` items of the chunk from `offset` without an outcome; returns them and the new offset."""
    rest = chunk[offset:]
    # One membership check for the rest of the chunk: a rewound cursor over a million counted
    # items costs a few hundred calls, not a million.
    counted = await services.progress.counted(run_id, rest)
    items: list[str] = []
    for index, (key, done) in enumerate(zip(rest, counted, strict=True)):
        if not done:
            items.append(key)
            if len(items) == want:
                return items, offset + index + 1
    return items, len(chunk)


async def enqueue_items(
    services: Services, run_id: str, items: list[str], *, again: bool = True, priority: bool = False
) -> int:
    """Queue collect jobs for a run's items; an item already queued for another run is waited on.
    `priority` jobs sort ahead of every ordinary job (worker.queue)."""
    specs = [JobSpec(keys.collect_job_id(key), (run_id, key)) for key in items]
    added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, specs, priority=priority)
    await services.waiters.forget_outcomes([key for key, ok in zip(items, added, strict=True) if ok])
    duplicates = [key for key, ok in zip(items, added, strict=True) if not ok]
    if not duplicates:
        return len(items)
    owners = await services.queue.job_args([keys.collect_job_id(key) for key in duplicates])
    finished: list[tuple[str, str]] = []
    shared = 0
    for key, args in zip(duplicates, owners, strict=True):
        if args is None or args[0] == run_id:
            continue  # gone meanwhile (retried below), or queued for this run already (it counts itself)
        outcome = await services.waiters.wait_for(key, run_id)
        shared += 1
        if outcome is not None:
            finished.append((key, outcome))
    if shared:
        await services.progress.add(run_id, {COUNTER_SHARED: shared})
    if finished:
        await finish_if_complete(services, run_id, *await services.progress.record_many(run_id, finished))
    vanished = [key for key, args in zip(duplicates, owners, strict=True) if args is None]
    # (The other job finished between the two calls, so ours can go in now.)
    retried = (
        await enqueue_items(services, run_id, vanished, again=False, priority=priority)
        if vanished and again
        else 0
    )
    return added.count(True) + retried
