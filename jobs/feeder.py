"""The feeder: keeps the queue topped up to QUEUE_WINDOW collect jobs from the runs' stored inputs.

Runs keep their inputs in MongoDB (chunk documents); the queue only ever holds a bounded window of
jobs, so a million-item run costs Redis a window, not a million jobs. Each feed splits the free room
equally between the running runs (round robin), so a small run started during a huge one gets its
share at once and finishes in time proportional to its own size.

Fed by: producers right after storing inputs, collect jobs when the queue runs low, search page
jobs after storing a page, and a periodic job as a safety net. One feeder at a time (a Redis lock).
Items already counted for the run are skipped, so a rewound cursor (pause, resume) is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from worker import keys
from worker.queue import JobSpec
from worker.runtime import Services, WorkerContext

log = structlog.get_logger("employee_sync.feeder")

FEEDER_LOCK = f"{keys.PREFIX}:feeder:lock"
LOCK_TTL_MS = 15_000
MAX_RUNS_PER_FEED = 100


@dataclass(slots=True)
class _Cursor:
    seq: int
    offset: int


async def feed(services: Services) -> int:
    """Top the queue up to the window; returns the number of collect jobs added."""
    token = await services.queue.try_lock(FEEDER_LOCK, LOCK_TTL_MS)
    if token is None:
        return 0  # another feeder is at it
    try:
        room = services.settings.queue_window - await services.queue.depth(keys.JOB_QUEUE)
        pending = await services.store.runs.feedable(MAX_RUNS_PER_FEED) if room > 0 else []
        added = 0
        while room > 0 and pending:
            share = max(1, room // len(pending))
            still_hungry = []
            for run in pending:
                got, more = await _feed_run(services, run, min(share, room))
                added, room = added + got, room - got
                if more and got == share:
                    still_hungry.append(await services.store.runs.get(str(run["_id"])) or run)
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


async def _feed_run(services: Services, run: dict[str, Any], want: int) -> tuple[int, bool]:
    """Enqueue up to `want` uncounted items of one run. Returns (jobs added, more inputs may follow)."""
    run_id = str(run["_id"])
    feed_state = run.get("feed") or {}
    cursor = _Cursor(int(feed_state.get("seq", 0)), int(feed_state.get("offset", 0)))
    items, exhausted = await _next_uncounted(services, run_id, cursor, want)
    added = await _enqueue(services, run_id, items)
    done = exhausted and bool(run.get("inputs_complete"))
    await services.store.runs.update(
        run_id, {"feed.seq": cursor.seq, "feed.offset": cursor.offset, "feed.done": done}
    )
    return added, not exhausted


async def _next_uncounted(
    services: Services, run_id: str, cursor: _Cursor, want: int
) -> tuple[list[str], bool]:
    """Walk the stored inputs from the cursor; returns (items, reached the end of what is stored)."""
    items: list[str] = []
    while len(items) < want:
        chunk = await services.store.runs.input_chunk(run_id, cursor.seq)
        if chunk is None:
            return items, True
        rest = chunk[cursor.offset :]
        # One membership check for the rest of the chunk: a rewound cursor over a million counted
        # items costs a few hundred calls, not a million.
        counted = await services.progress.counted(run_id, rest)
        cursor.offset = len(chunk)
        for index, (key, done) in enumerate(zip(rest, counted, strict=True)):
            if not done:
                items.append(key)
                if len(items) == want:
                    cursor.offset = len(chunk) - len(rest) + index + 1
                    break
        if cursor.offset >= len(chunk):
            cursor.seq, cursor.offset = cursor.seq + 1, 0
    return items, False


async def _enqueue(services: Services, run_id: str, items: list[str], *, again: bool = True) -> int:
    specs = [JobSpec(keys.collect_job_id(key), (run_id, key)) for key in items]
    added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, specs)
    duplicates = [key for key, ok in zip(items, added, strict=True) if not ok]
    if not duplicates:
        return len(items)
    owners = await services.queue.job_args([keys.collect_job_id(key) for key in duplicates])
    # Queued or running for *another* run: that run's job does the work; count it here as done.
    # Queued for this run already (a rewound cursor): its own job will count it.
    elsewhere = [
        (key, "already_queued")
        for key, args in zip(duplicates, owners, strict=True)
        if args and args[0] != run_id
    ]
    await services.progress.record_many(run_id, elsewhere)
    vanished = [key for key, args in zip(duplicates, owners, strict=True) if args is None]
    retried = await _enqueue(services, run_id, vanished, again=False) if vanished and again else 0
    # (The other job finished between the two calls, so ours can go in now.)
    return added.count(True) + retried
