"""Resuming a run from its MongoDB record: after Redis lost the queue, or after a failed search.

Every stored input item that has no outcome yet is enqueued again (the deterministic job id makes
that harmless for items still queued). An item the mirror shows as synced by this very run is
counted as `recovered` instead of being collected again: credits are not spent twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs.inputs import employee_id_of
from jobs.runs import RunState, finish_if_complete
from jobs.search import enqueue_page
from worker import keys
from worker.errors import InputError
from worker.queue import JobSpec
from worker.runtime import Services


@dataclass(frozen=True, slots=True)
class ResumeReport:
    run_id: str
    requeued: int
    recovered: int
    search_page: int | None


async def resume_run(services: Services, run_id: str) -> ResumeReport:
    run = await services.store.runs.get(run_id)
    if run is None:
        raise InputError(f"no run {run_id!r}")
    if run["state"] == RunState.FAILED.value:
        await services.store.runs.transition(
            run_id, [RunState.FAILED.value], {"state": "running", "error": None}
        )
    elif run["state"] != RunState.RUNNING.value:
        raise InputError(f"run {run_id} is {run['state']}; only running or failed runs can be resumed")
    requeued = recovered = 0
    async for items in services.store.runs.iter_inputs(run_id):
        done = await services.progress.counted(run_id, items)
        pending = [key for key, counted in zip(items, done, strict=True) if not counted]
        synced = await services.store.employees.synced_by_run(
            [i for i in map(employee_id_of, pending) if i is not None], run_id
        )
        again = [key for key in pending if employee_id_of(key) not in synced]
        await services.progress.record_many(run_id, [(f"id:{i}", "recovered") for i in sorted(synced)])
        specs = [JobSpec(keys.collect_job_id(key), (run_id, key)) for key in again]
        added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, specs)
        requeued += added.count(True)
        recovered += len(synced)
    return ResumeReport(run_id, requeued, recovered, await _resume_counters(services, run_id))


async def _resume_counters(services: Services, run_id: str) -> int | None:
    """Re-publish the run's size (Redis may have lost it) and restart an unfinished search chain."""
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
