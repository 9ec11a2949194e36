"""Resuming a run: a paused one simply continues; a running or failed one is rebuilt from its
MongoDB record (after Redis lost the queue, or after a search that kept failing).

The feeder's cursor is rewound: the feeder re-feeds every stored item without an outcome (jobs
still queued are not duplicated: their ids are deterministic). An item the mirror shows as synced
by this very run is counted as `recovered` first instead of being collected again: credits are
not spent twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs import control
from jobs.feeder import feed
from jobs.inputs import employee_id_of
from jobs.pause import REWOUND_FEED
from jobs.runs import RunState, finish_if_complete
from jobs.search import enqueue_page
from worker.errors import RunNotFoundError, RunStateError
from worker.runtime import Services


@dataclass(frozen=True, slots=True)
class ResumeReport:
    run_id: str
    pending: int
    recovered: int
    search_page: int | None


async def resume_run(services: Services, run_id: str) -> ResumeReport:
    run = await services.store.runs.get(run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    if run["state"] == RunState.PAUSED.value:
        status = await control.resume_run(services, run_id)
        return ResumeReport(run_id, max(0, status.accepted - status.processed), 0, None)
    if run["state"] not in (RunState.RUNNING.value, RunState.FAILED.value):
        raise RunStateError(f"run {run_id} is {run['state']}; only paused, running or failed runs resume")
    pending = recovered = 0
    async for items in services.store.runs.iter_inputs(run_id):
        done = await services.progress.counted(run_id, items)
        left = [key for key, counted in zip(items, done, strict=True) if not counted]
        ids = [i for i in map(employee_id_of, left) if i is not None]
        synced = await services.store.employees.synced_by_run(ids, run_id)
        await services.progress.record_many(run_id, [(f"id:{i}", "recovered") for i in sorted(synced)])
        pending += len(left) - len(synced)
        recovered += len(synced)
    await services.store.runs.transition(
        run_id,
        [RunState.RUNNING.value, RunState.FAILED.value],
        {"state": "running", "error": None, **REWOUND_FEED},
    )
    search_page = await _restart_counters(services, run_id)
    await feed(services)
    return ResumeReport(run_id, pending, recovered, search_page)


async def _restart_counters(services: Services, run_id: str) -> int | None:
    """Re-publish the run's size (Redis may have lost it) or restart an unfinished search chain."""
    run = await services.store.runs.get(run_id)
    assert run is not None
    search = run.get("search")
    if search is not None and not search.get("exhausted"):
        page = int(search["next_page"])
        await enqueue_page(services, run_id, page)
        return page
    processed, accepted = await services.progress.set_accepted(run_id, int(run.get("accepted", 0)))
    await finish_if_complete(services, run_id, processed, accepted)
    return None
