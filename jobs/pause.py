"""Moving a run between states, and pausing it (by hand, or fleet-wide when credits run out).

Pausing takes the run's queued jobs out of the queue and rewinds the feeder's cursor; the feeder
skips items already counted, so resuming re-feeds exactly what is left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import structlog

from jobs.runs import RunState, RunStatus, get_status, utcnow
from worker import keys
from worker.errors import RunNotFoundError, RunStateError
from worker.runtime import Services

log = structlog.get_logger("employee_sync.control")

REWOUND_FEED = {"feed.seq": 0, "feed.offset": 0, "feed.done": False}
PAUSED = "paused"  # a job's answer when its run was paused under it: not an outcome of the item
OUT_OF_CREDITS = "out of credits"


async def pause_run(services: Services, run_id: str, *, reason: str | None = None) -> RunStatus:
    fields = {"paused_at": utcnow(), "pause_reason": reason, **REWOUND_FEED}
    await move_run(services, run_id, [RunState.RUNNING], RunState.PAUSED, fields)
    await services.queue.remove_queued(keys.JOB_QUEUE, run_id)
    return await status_or_raise(services, run_id)


async def pause_for_credits(services: Services, run_id: str) -> str:
    """Out of credits: close the API to the fleet and pause this run until someone resumes it."""
    await services.credits.mark_exhausted()
    with contextlib.suppress(RunStateError):  # already paused (or ended) by another job
        await pause_run(services, run_id, reason=OUT_OF_CREDITS)
        log.warning("run.paused", reason=OUT_OF_CREDITS)
    return PAUSED


async def move_run(
    services: Services, run_id: str, allowed: Sequence[RunState], target: RunState, fields: dict[str, Any]
) -> None:
    moved = await services.store.runs.transition(
        run_id, [s.value for s in allowed], {"state": target.value, **fields}
    )
    if moved:
        return
    run = await services.store.runs.get(run_id)
    if run is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    raise RunStateError(
        f"run {run_id} is {run['state']}; it can become {target.value} only from "
        + " or ".join(s.value for s in allowed)
    )


async def status_or_raise(services: Services, run_id: str) -> RunStatus:
    status = await get_status(services, run_id)
    if status is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return status
