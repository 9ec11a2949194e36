"""The collect job: one rate-limit slot, one GET, one write to the mirror, one outcome per run.

The job's run (and every run waiting on this item, see `worker.waiters`) gets the outcome. The
job first checks that someone still wants the item: a job of a paused or cancelled run that no
running run waits on spends no credit.
"""

from __future__ import annotations

import contextlib
from typing import Any

import structlog

from config.logging import redact_text
from jobs.control import PAUSED, pause_for_credits
from jobs.feeder import maybe_feed
from jobs.inputs import collect_key_of, employee_id_of
from jobs.runs import finish_if_complete, record_outcome
from worker.errors import (
    EmployeeSyncError,
    NotFoundError,
    OutOfCreditsError,
    PermanentError,
    RateLimitedError,
    RetryJob,
    TransientError,
)
from worker.run_model import COUNTER_429, COUNTER_RETRIES, Outcome, RunState, utcnow
from worker.runtime import Services, WorkerContext

log = structlog.get_logger("employee_sync.collect")

STOPPED = "skipped: run not running"  # not an outcome: nobody running wants the item now


async def collect(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    """Collect `item_key` (`id:<n>` or `name:<shorthand>`) into the mirror; returns the outcome."""
    structlog.contextvars.bind_contextvars(item=item_key)
    services = ctx["services"]
    try:
        if not await _wanted(services, run_id, item_key):
            return STOPPED
        outcome = await _outcome(ctx, run_id, item_key)
        if outcome == PAUSED:
            return outcome  # not an outcome of the item: it is fed again when the run resumes
        await _record_everywhere(services, run_id, item_key, outcome)
    except TransientError as exc:
        # Writing the outcome down failed (MongoDB or Redis away): run the job again later. A
        # profile already written was stashed, so the retry writes it again without paying.
        attempt = ctx.get("job_try", 1)
        raise RetryJob(ctx["retry"].delay_s(attempt, exc.retry_after_s), str(exc)) from exc
    with contextlib.suppress(TransientError):  # the item is done; the feeder's tick refills anyway
        await maybe_feed(services)
    return outcome


async def _wanted(services: Services, run_id: str, item_key: str) -> bool:
    if await services.store.runs.state_of(run_id) is RunState.RUNNING:
        return True
    for waiter in await services.waiters.waiting(item_key):
        if await services.store.runs.state_of(waiter) is RunState.RUNNING:
            return True
    return False


async def _record_everywhere(services: Services, run_id: str, item_key: str, outcome: str) -> None:
    await record_outcome(services, run_id, item_key, outcome)
    for waiter in await services.waiters.release(item_key, outcome):
        if waiter != run_id:
            _, processed, accepted = await services.progress.record(waiter, item_key, outcome)
            await finish_if_complete(services, waiter, processed, accepted)


async def _outcome(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    attempt = ctx.get("job_try", 1)
    try:
        if await ctx["services"].credits.exhausted():
            return await pause_for_credits(ctx["services"], run_id)
        if attempt > 1 and await _written_by_earlier_try(ctx["services"], run_id, item_key):
            return Outcome.RECOVERED.value
        return await _collect_and_store(ctx, run_id, item_key)
    except RetryJob:  # a stale 402 (see pause_for_credits): run again, it is nobody's failure
        raise
    except NotFoundError:
        return await _not_found(ctx, run_id, item_key)
    except OutOfCreditsError:
        return await pause_for_credits(ctx["services"], run_id)
    except EmployeeSyncError as exc:
        if isinstance(exc, RateLimitedError):
            await ctx["services"].progress.add(run_id, {COUNTER_429: 1})
        retry = ctx["retry"].next_step(exc, attempt)
        if retry is not None:
            await ctx["services"].progress.add(run_id, {COUNTER_RETRIES: 1})
            raise retry from exc
        return await _dead_letter(ctx, run_id, item_key, exc, attempt)
    except Exception as exc:  # a bug must not leave the run waiting forever for this item
        log.exception("collect.internal_error")
        return await _dead_letter(ctx, run_id, item_key, exc, attempt)


async def _written_by_earlier_try(services: Services, run_id: str, item_key: str) -> bool:
    """An earlier try wrote the profile but failed to count it (Redis away): count, don't re-buy."""
    employee_id = employee_id_of(item_key)
    if employee_id is None:
        return False
    return bool(await services.store.employees.synced_by_run([employee_id], run_id))


async def _collect_and_store(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    services = ctx["services"]
    stashed = await services.stash.take(item_key)
    if stashed is not None:
        profile, fetched_at = stashed
    else:
        profile, fetched_at = await _fetch(ctx, item_key), utcnow()
    try:
        outcome = await services.store.employees.upsert(
            int(profile["id"]), profile, run_id=run_id, fetched_at=fetched_at, by=item_key.partition(":")[0]
        )
    except BaseException:
        # Paid for but not written (MongoDB away, or the job's deadline hit mid-write): keep it so
        # the retry writes this fetch instead of buying the profile again.
        if stashed is None:
            await services.stash.put(item_key, profile, fetched_at)
        raise
    services.metrics.observe_sink(outcome.value)
    if stashed is not None:
        await services.stash.drop(item_key)
    return outcome.value


async def _fetch(ctx: WorkerContext, item_key: str) -> dict[str, Any]:
    limiter = ctx["limiter"]
    grant = await limiter.acquire("collect")
    try:
        profile = await ctx["client"].collect(collect_key_of(item_key))
    except RateLimitedError as exc:
        pause_s = await limiter.penalize("collect", exc.retry_after_s)
        log.warning("collect.rate_limited", pause_s=round(pause_s, 3))
        raise RateLimitedError(str(exc), retry_after_s=pause_s) from exc
    structlog.contextvars.bind_contextvars(
        employee_id=profile.employee_id,
        credits_remaining=profile.credits_remaining,
        limiter_wait_s=round(grant.waited_s, 3),
    )
    return profile.data


async def _not_found(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    """The API's own "not found" for an id tombstones the stored profile. By name it does not:
    names get reused. (A 404 that is not the API's answer never gets here: see worker.client.)"""
    employee_id = employee_id_of(item_key)
    if employee_id is not None:
        services = ctx["services"]
        if await services.store.employees.tombstone(employee_id, run_id=run_id, now=utcnow()):
            services.metrics.observe_sink("tombstoned")  # only a live profile becomes a tombstone
    return Outcome.NOT_FOUND.value


async def _dead_letter(ctx: WorkerContext, run_id: str, item_key: str, exc: Exception, attempt: int) -> str:
    # Upstream text may echo anything (a proxy's page, a header): never store a secret.
    reason = redact_text(str(exc) or type(exc).__name__, ctx["settings"].secrets())
    await ctx["services"].store.dead_letters.put(
        run_id=run_id,
        item_key=item_key,
        reason=reason,
        error_type=type(exc).__name__,
        status=exc.status if isinstance(exc, PermanentError) else None,
        attempts=attempt,
        now=utcnow(),
    )
    return Outcome.FAILED.value
