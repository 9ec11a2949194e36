"""A sync tick's plan becomes an ordinary run (kind `sync`): stored inputs, fed, collected, counted.

The run's chunks hold the delta first, then the sweep (its `SyncOrigin` says how many of each),
so the scheduler can read back exactly which profiles the delta collected when it moves the
watermark. Everything downstream (feeder, collect jobs, waiters, status, pause, recovery) is the
same as for a run made from an id file. When the planner picked bulk for the tick
(`jobs.sync_plan.plan_sweep`), the run is a bulk run instead (kind `bulk`, the same `SyncOrigin`),
its items sent as id_file data requests; settling and the watermark read it the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from jobs.feeder import feed
from jobs.producers import Intake, enqueue_lines, list_as_lines
from jobs.runs import finish_if_complete, new_run_id
from jobs.sync_plan import Plan
from worker.run_model import Run, RunKind, RunState, SyncOrigin
from worker.runtime import Services
from worker.sync_model import Sync

_STARTABLE = frozenset({RunState.ENQUEUEING})


async def start_sync_run(services: Services, sync: Sync, plan: Plan) -> str:
    """Store the plan as a run and let the feeder queue it (or, when the planner picked bulk, send
    it by data requests); returns the run id."""
    origin = SyncOrigin(
        sync_name=sync.name,
        delta_items=len(plan.delta),
        sweep_items=len(plan.sweep),
        watermark_from=plan.watermark_from,
        delta_complete=plan.delta_complete,
        via=plan.via,
    )
    items = list(dict.fromkeys(plan.delta + plan.sweep))
    if plan.via == "bulk":
        return await _start_bulk(services, sync, origin, items)
    run = Run(run_id=new_run_id(), kind=RunKind.SYNC, source=f"sync:{sync.name}", sync=origin)
    await services.store.runs.create(run)
    size = services.settings.input_chunk_size
    for seq, start in enumerate(range(0, len(items), size)):
        await services.store.runs.save_inputs(run.run_id, seq, items[start : start + size])
    await services.store.runs.publish_inputs(
        run.run_id, accepted=len(items), rejected=0, duplicates=0, sample=[]
    )
    await services.store.runs.move(run.run_id, RunState.RUNNING, only_from=_STARTABLE)
    processed, accepted = await services.progress.set_accepted(run.run_id, len(items))
    await finish_if_complete(services, run.run_id, processed, accepted)
    await feed(services)
    return run.run_id


async def _start_bulk(services: Services, sync: Sync, origin: SyncOrigin, items: list[str]) -> str:
    """The tick's run as a bulk run (kind `bulk`, still linked to the sync), made by the producer
    every bulk id run comes from. Its chunks keep the delta first, so `delta_ids` reads it the same
    way. Nothing is skipped as fresh: every item was picked because it is due or changed."""
    ids = [int(key.split(":", 1)[1]) for key in items]  # `plan_sweep` picks bulk for ids only
    receipt = await enqueue_lines(
        services, list_as_lines(ids), "ids", source=f"sync:{sync.name}", intake=Intake(bulk=True), sync=origin
    )
    return receipt.run_id


async def delta_ids(services: Services, run: Run) -> AsyncIterator[int]:
    """The employee ids a sync run collected as its delta (its first `delta_items` items)."""
    left = 0 if run.sync is None else run.sync.delta_items
    async for items, _ in services.store.runs.iter_chunks(run.run_id):
        for key in items[:left]:
            if key.startswith("id:"):
                yield int(key.split(":", 1)[1])
        left -= min(left, len(items))
        if left == 0:
            return
