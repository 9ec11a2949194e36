"""Run control, in one place: pause, resume, cancel, and recover (rebuild from MongoDB).

- pause: running → paused. Its queued jobs leave the queue and the feed cursor is rewound; the
  feeder skips items already counted, so resuming re-feeds exactly what is left. A job a worker
  already started finishes its item; collect checks the run's state before calling the API, so a
  job that starts after the pause spends nothing.
- resume: paused → running (and reopens the API to the fleet after an out-of-credits pause).
- cancel: any active state → cancelled, for good; its queued jobs leave the queue.
- recover: a running or failed run whose queue (or counters) Redis lost is rebuilt from its stored
  inputs: items the mirror shows as synced by this run count as `recovered` (no credit spent
  twice), the rest are fed again.
A removed job that another run was waiting on is handed to that run instead of being dropped.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

import structlog

from jobs.bulk_chain import restart_bulk
from jobs.feeder import feed
from jobs.inputs import employee_id_of
from jobs.runs import RunStatus, get_status, republish_size
from jobs.search_chain import enqueue_page
from worker import keys
from worker.errors import RetryJob, RunNotFoundError, RunStateError
from worker.queue import JobSpec
from worker.run_model import Outcome, Run, RunKind, RunState, allowed_from, utcnow
from worker.runtime import Services

log = structlog.get_logger("employee_sync.control")

PAUSED = "paused"  # a job's answer when its run was paused under it: not an outcome of the item
OUT_OF_CREDITS = "out of credits"


async def pause_run(services: Services, run_id: str, *, reason: str | None = None) -> RunStatus:
    await _move(services, run_id, RunState.PAUSED, rewind_feed=True, paused_at=utcnow(), pause_reason=reason)
    await take_out_queued(services, run_id)
    return await status_or_raise(services, run_id)


async def pause_for_credits(services: Services, run_id: str) -> str:
    """Out of credits: close the API to the fleet and pause this run until someone resumes it.

    A 402 to a request sent before a resume is stale: the job runs again (its next look at the gate
    sees the resume) instead of pausing the run the resume just started."""
    if not await services.credits.mark_exhausted():
        log.info("credits.stale_402", reason="a resume came after this job looked at the gate")
        raise RetryJob(services.settings.default_retry_after_s, "402 from before a resume")
    with contextlib.suppress(RunStateError):  # already paused (or ended) by another job
        await pause_run(services, run_id, reason=OUT_OF_CREDITS)
        log.warning("run.paused", reason=OUT_OF_CREDITS)
    return PAUSED


async def resume_run(services: Services, run_id: str) -> RunStatus:
    """Paused → running. Also reopens the API to the fleet if it was closed for lack of credits:
    the caller says credits were added; if not, the next 402 pauses the runs again."""
    await _move(services, run_id, RunState.RUNNING, only_from=frozenset({RunState.PAUSED}), rewind_feed=True)
    await services.credits.clear()
    await _restart(services, await _get(services, run_id))
    return await status_or_raise(services, run_id)


async def cancel_run(services: Services, run_id: str) -> RunStatus:
    await _move(services, run_id, RunState.CANCELLED, finished_at=utcnow())
    await take_out_queued(services, run_id)
    return await status_or_raise(services, run_id)


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    run_id: str
    pending: int
    recovered: int
    search_page: int | None


async def recover_run(services: Services, run_id: str) -> RecoveryReport:
    """Rebuild a running or failed run from MongoDB (a paused one is simply resumed)."""
    run = await _get(services, run_id)
    if run.state is RunState.PAUSED:
        status = await resume_run(services, run_id)
        return RecoveryReport(run_id, max(0, status.accepted - status.processed), 0, None)
    if run.state not in (RunState.RUNNING, RunState.FAILED):
        raise RunStateError(f"run {run_id} is {run.state.value}; only paused, running or failed runs resume")
    pending = recovered = stored = 0
    async for items, fresh in services.store.runs.iter_chunks(run_id):
        stored += len(items) + len(fresh)
        # Ids a search skipped as fresh are outcomes too: without them the run could never finish.
        await services.progress.record_many(run_id, [(key, Outcome.SKIPPED_FRESH) for key in fresh])
        done = await services.progress.counted(run_id, items)
        left = [key for key, counted in zip(items, done, strict=True) if not counted]
        ids = [i for i in map(employee_id_of, left) if i is not None]
        synced = await services.store.employees.synced_by_run(ids, run_id)
        await services.progress.record_many(run_id, [(f"id:{i}", Outcome.RECOVERED) for i in sorted(synced)])
        pending += len(left) - len(synced)
        recovered += len(synced)
    if not run.inputs_complete and run.search is None:
        # The producer died before publishing the run's size: what it stored is what it accepted.
        await services.store.runs.complete_inputs(run_id, stored)
    await services.store.runs.move(
        run_id, RunState.RUNNING, only_from=frozenset({RunState.RUNNING, RunState.FAILED}), rewind_feed=True
    )
    page = await _restart(services, await _get(services, run_id))
    return RecoveryReport(run_id, pending, recovered, page)


async def take_out_queued(services: Services, run_id: str) -> int:
    """Remove the run's queued jobs; a collect job another run waits on is handed to that run."""
    removed = await services.queue.remove_queued(keys.JOB_QUEUE, run_id)
    for job_id in removed:
        item_key = keys.item_of_collect_job(job_id)
        if item_key is None:
            continue
        waiting = await services.waiters.take(item_key)
        if waiting:
            heir, rest = waiting[0], waiting[1:]
            await services.waiters.add(item_key, rest)
            spec = JobSpec(job_id, (heir, item_key))
            if (await services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, [spec]))[0]:
                await services.waiters.forget_outcomes([item_key])
    return len(removed)


async def _restart(services: Services, run: Run) -> int | None:
    """After a move to running: continue an unfinished search chain, re-publish the run's size
    (Redis may have lost it; the run finishes if nothing is left) and feed. Returns the page queued."""
    page = None
    if run.kind is RunKind.BULK:
        # Its data requests' jobs left the queue with the pause: each continues from its row.
        await restart_bulk(services, run)
        await republish_size(services, run)
        return None
    if run.search is not None and not run.search.exhausted:
        page = run.search.next_page
        await enqueue_page(services, run.run_id, page)
    await republish_size(services, run)
    await feed(services)
    return page


async def _move(
    services: Services,
    run_id: str,
    target: RunState,
    *,
    only_from: frozenset[RunState] | None = None,
    rewind_feed: bool = False,
    finished_at: datetime | None = None,
    paused_at: datetime | None = None,
    pause_reason: str | None = None,
) -> None:
    moved = await services.store.runs.move(
        run_id,
        target,
        only_from=only_from,
        rewind_feed=rewind_feed,
        finished_at=finished_at,
        paused_at=paused_at,
        pause_reason=pause_reason,
    )
    if moved:
        return
    run = await _get(services, run_id)
    allowed = allowed_from(target) if only_from is None else allowed_from(target) & only_from
    names = " or ".join(sorted(s.value for s in allowed))
    raise RunStateError(f"run {run_id} is {run.state.value}; it can become {target.value} only from {names}")


async def _get(services: Services, run_id: str) -> Run:
    run = await services.store.runs.get(run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return run


async def status_or_raise(services: Services, run_id: str) -> RunStatus:
    status = await get_status(services, run_id)
    if status is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return status
