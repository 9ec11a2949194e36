"""The dead-letter: permanent failures with their reason, and putting them back to work.

Requeueing an item un-counts its `failed` outcome (only if `failed` is what it was counted as: a
stale letter whose item later succeeded is simply dropped), reopens its run if it had finished
(re-publishing the run's size, which Redis may have lost), and queues the collect job again. When
another run's job holds the item, this run waits on that job instead. The letter goes only once
the item is queued or waited on; a crash half-way leaves an uncounted item that `recover` feeds.
"""

from __future__ import annotations

from typing import Any

from jobs.runs import record_outcome, republish_size
from worker import keys
from worker.errors import WorkerDiedError
from worker.queue import JobSpec
from worker.run_model import Outcome, RunState, utcnow
from worker.runtime import Services
from worker.store.deadletters import DeadLetter


async def list_dead_letters(
    services: Services, *, run_id: str | None, reason: str | None, limit: int
) -> list[DeadLetter]:
    return await services.store.dead_letters.list(run_id, limit, reason_contains=reason)


async def requeue_dead_letters(
    services: Services, *, run_id: str | None, reason: str | None, limit: int = 10_000
) -> int:
    letters = await list_dead_letters(services, run_id=run_id, reason=reason, limit=limit)
    requeued = 0
    for letter in letters:
        if await _requeue(services, letter):
            requeued += 1
        await services.store.dead_letters.delete(letter.letter_id)
    return requeued


async def _requeue(services: Services, letter: DeadLetter) -> bool:
    """Put one letter's item back to work; False if there was nothing to redo."""
    owner, item_key = letter.run_id, letter.item_key
    if not await services.progress.uncount(owner, item_key, Outcome.FAILED):
        counted = await services.progress.counted(owner, [item_key])
        if counted[0]:
            return False  # a later try succeeded: the letter was stale
    await services.store.runs.move(
        owner, RunState.RUNNING, only_from=frozenset({RunState.FINISHED}), reopen=True
    )
    run = await services.store.runs.get(owner)
    if run is not None:
        await republish_size(services, run)
    job_id = keys.collect_job_id(item_key)
    added = await services.queue.enqueue_many(
        keys.JOB_QUEUE, keys.COLLECT_JOB, [JobSpec(job_id, (owner, item_key))]
    )
    if added[0]:
        await services.waiters.forget_outcomes([item_key])  # e.g. the marker of the job that failed
        return True
    (args,) = await services.queue.job_args([job_id])
    if args is not None and args[0] != owner:
        outcome = await services.waiters.wait_for(item_key, owner)
        if outcome is not None:
            await record_outcome(services, owner, item_key, outcome)
    return True


WORKER_DIED = "worker died while running it"


async def on_poison_job(ctx: dict[str, Any], job_name: str, args: tuple[Any, ...]) -> str:
    """A job that killed its worker again and again: dead-letter it instead of running it again."""
    services: Services = ctx["services"]
    if job_name == keys.COLLECT_JOB and len(args) >= 2:
        run_id, item_key = str(args[0]), str(args[1])
        await services.store.dead_letters.put(
            run_id=run_id,
            item_key=item_key,
            reason=WORKER_DIED,
            error_type=WorkerDiedError.__name__,
            attempts=int(ctx.get("job_try", 1)),
            now=utcnow(),
        )
        await record_outcome(services, run_id, item_key, Outcome.FAILED)
        for waiter in await services.waiters.release(item_key, Outcome.FAILED):
            if waiter != run_id:
                await record_outcome(services, waiter, item_key, Outcome.FAILED)
        return "failed: worker died while running it"
    if job_name == keys.SEARCH_PAGE_JOB and args:
        reason = f"search page {args[1] if len(args) > 1 else '?'}: {WORKER_DIED}; resume to continue"
        await services.store.runs.move(str(args[0]), RunState.FAILED, finished_at=utcnow(), error=reason)
        return "failed: worker died while running it"
    return "dropped: worker died while running it"
