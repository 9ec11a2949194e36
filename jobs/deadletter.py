"""The dead-letter: permanent failures with their reason, and putting them back to work.

Requeueing an item un-counts its `failed` outcome, reopens its run if it had finished, and
enqueues the collect job again; the dead-letter entry goes only once the job is queued, and a
crash half-way leaves an uncounted item that `resume` feeds again. Nothing is lost either way.
"""

from __future__ import annotations

from typing import Any

from jobs.runs import RunState
from worker import keys
from worker.queue import JobSpec
from worker.runtime import Services


async def list_dead_letters(
    services: Services, *, run_id: str | None, reason: str | None, limit: int
) -> list[dict[str, Any]]:
    return await services.store.dead_letters.list(run_id, limit, reason_contains=reason)


async def requeue_dead_letters(
    services: Services, *, run_id: str | None, reason: str | None, limit: int = 10_000
) -> int:
    letters = await list_dead_letters(services, run_id=run_id, reason=reason, limit=limit)
    for letter in letters:
        owner, item_key = str(letter["run_id"]), str(letter["item_key"])
        await services.progress.uncount(owner, item_key, "failed")
        await services.store.runs.transition(
            owner, [RunState.FINISHED.value], {"state": RunState.RUNNING.value, "finished_at": None}
        )
        spec = JobSpec(keys.collect_job_id(item_key), (owner, item_key))
        await services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, [spec])
        await services.store.dead_letters.delete(str(letter["_id"]))
    return len(letters)
