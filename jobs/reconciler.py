"""The reconciler: notices running runs that Redis lost and rebuilds them from MongoDB, unasked.

Runs live in MongoDB; their queue window, in-flight jobs and live counters live in Redis. When
Redis restarts empty, is flushed, or a feed was cut short (a lost feeder lock, a feeder that died
between enqueueing and saving its cursor), a run can be left running with nothing that will ever
move it on. A periodic job (every RECONCILER_EVERY_S on one worker, under a Redis lock) looks at
every running run and calls it stalled when

- its live counters are gone (its size is published but Redis no longer knows it) on two looks in
  a row (one look could fall between a producer publishing the size in MongoDB and in Redis), or
- it has had no job in the queue (queued or running) and its processed count has not moved for
  RECONCILE_AFTER_S.

A stalled run is recovered (`jobs.control.recover_run`): items the mirror shows as synced by the
run count as `recovered`, the rest are fed again, a search chain continues at its last page. A
spurious recovery is harmless: counted items are skipped and job ids deduplicate the rest. Paused
runs are left alone (`resume` is a person's decision).
"""

from __future__ import annotations

from collections import Counter

import structlog

from jobs.control import recover_run
from worker import keys
from worker.errors import RunNotFoundError, RunStateError
from worker.run_model import Run
from worker.runtime import Services, WorkerContext
from worker.stalls import StallWatch

log = structlog.get_logger("employee_sync.reconciler")

RECONCILER_LOCK = f"{keys.PREFIX}:reconciler:lock"
LOCK_TTL_MS = 60_000
COUNTERS_LOST = "counters lost"
# Lost counters are certain after two looks this far apart (the next tick, RECONCILER_EVERY_S on).
COUNTERS_LOST_AFTER_S = 1.0


async def reconcile(services: Services) -> list[str]:
    """One pass over the running runs; returns the ids of the runs it recovered."""
    token = await services.queue.try_lock(RECONCILER_LOCK, LOCK_TTL_MS)
    if token is None:
        return []  # another worker is at it
    try:
        return await _pass(services)
    finally:
        await services.queue.unlock(RECONCILER_LOCK, token)


async def reconciler_tick(ctx: WorkerContext) -> str:
    recovered = await reconcile(ctx["services"])
    return f"recovered {len(recovered)}"


async def _pass(services: Services) -> list[str]:
    watch = StallWatch(services.redis)
    runs = await services.store.runs.running()
    queued = await services.queue.owners(keys.JOB_QUEUE) if runs else Counter[str]()
    suspects: list[str] = []
    recovered: list[str] = []
    for run in runs:
        signature = await _stall_signature(services, run, queued[run.run_id])
        if signature is None:
            continue
        stalled_s = await watch.unchanged_for_s(run.run_id, signature)
        after_s = services.settings.reconcile_after_s
        wait_s = min(COUNTERS_LOST_AFTER_S, after_s) if signature == COUNTERS_LOST else after_s
        if stalled_s < wait_s:
            suspects.append(run.run_id)
            continue
        if await _recover(services, run.run_id, signature, stalled_s):
            recovered.append(run.run_id)
    await watch.keep_only(suspects)
    return recovered


async def _stall_signature(services: Services, run: Run, jobs_queued: int) -> str | None:
    """What a stalled run looks like now (None: it is not stalled). Two looks at the same
    signature RECONCILE_AFTER_S apart make it stalled."""
    counts = await services.progress.counts(run.run_id)
    if run.inputs_complete and "accepted" not in counts:
        return COUNTERS_LOST  # the size is published with the inputs: Redis lost the run's counters
    if jobs_queued:
        return None
    return f"idle at {counts.get('processed', 0)}"


async def _recover(services: Services, run_id: str, signature: str, stalled_s: float) -> bool:
    try:
        report = await recover_run(services, run_id)
    except (RunNotFoundError, RunStateError):
        return False  # it ended, or was paused or cancelled, meanwhile
    log.warning(
        "run.reconciled", run_id=run_id, why=signature, stalled_s=round(stalled_s, 1),
        pending=report.pending, recovered=report.recovered, search_page=report.search_page,
    )  # fmt: skip
    return True
