"""The collect job: one rate-limit slot, one GET, one write to the mirror, one outcome for the run."""

from __future__ import annotations

from typing import Any

import structlog

from jobs.feeder import maybe_feed
from jobs.inputs import api_key_of, employee_id_of
from jobs.pause import PAUSED, pause_for_credits
from jobs.runs import record_outcome, utcnow
from worker.errors import (
    EmployeeSyncError,
    NotFoundError,
    OutOfCreditsError,
    PermanentError,
    RateLimitedError,
    RetryJob,
    StoreUnavailableError,
    TransientError,
)
from worker.runtime import WorkerContext

log = structlog.get_logger("employee_sync.collect")


async def collect(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    """Collect `item_key` (`id:<n>` or `name:<shorthand>`) into the mirror; returns the outcome."""
    structlog.contextvars.bind_contextvars(item=item_key)
    try:
        outcome = await _outcome(ctx, run_id, item_key)
        if outcome == PAUSED:
            return outcome  # not an outcome of the item: it is fed again when the run resumes
        await record_outcome(ctx["services"], run_id, item_key, outcome)
        await maybe_feed(ctx["services"])
    except TransientError as exc:
        # Writing the outcome down failed (MongoDB or Redis away): run the whole job again later.
        attempt = ctx.get("job_try", 1)
        raise RetryJob(ctx["retry"].delay_s(attempt, exc.retry_after_s), str(exc)) from exc
    return outcome


async def _outcome(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    attempt = ctx.get("job_try", 1)
    try:
        if await ctx["services"].credits.exhausted():
            return await pause_for_credits(ctx["services"], run_id)
        return await _collect_and_store(ctx, run_id, item_key)
    except NotFoundError:
        return await _not_found(ctx, run_id, item_key)
    except OutOfCreditsError:
        return await pause_for_credits(ctx["services"], run_id)
    except EmployeeSyncError as exc:
        if isinstance(exc, RateLimitedError):
            await ctx["services"].progress.add(run_id, {"upstream_429": 1})
        retry = ctx["retry"].next_step(exc, attempt)
        if retry is not None:
            await ctx["services"].progress.add(run_id, {"retries": 1})
            raise retry from exc
        return await _dead_letter(ctx, run_id, item_key, exc, attempt)
    except Exception as exc:  # a bug must not leave the run waiting forever for this item
        log.exception("collect.internal_error")
        return await _dead_letter(ctx, run_id, item_key, exc, attempt)


async def _collect_and_store(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    services = ctx["services"]
    profile = await services.stash.take(item_key)
    stashed = profile is not None
    if profile is None:
        profile = await _fetch(ctx, item_key)
    try:
        outcome = await services.store.employees.upsert(
            int(profile["id"]), profile, run_id=run_id, now=utcnow()
        )
    except StoreUnavailableError:
        if not stashed:
            await services.stash.put(item_key, profile)
        raise
    services.metrics.observe_sink(outcome.value)
    if stashed:
        await services.stash.drop(item_key)
    return outcome.value


async def _fetch(ctx: WorkerContext, item_key: str) -> dict[str, Any]:
    limiter = ctx["limiter"]
    grant = await limiter.acquire("collect")
    try:
        profile = await ctx["client"].collect(api_key_of(item_key))
    except RateLimitedError as exc:
        retry_after_s = exc.retry_after_s or ctx["settings"].default_retry_after_s
        pause_s = await limiter.penalize("collect", retry_after_s)
        log.warning("collect.rate_limited", pause_s=round(pause_s, 3))
        raise RateLimitedError(str(exc), retry_after_s=pause_s) from exc
    structlog.contextvars.bind_contextvars(
        employee_id=profile.employee_id,
        credits_remaining=profile.credits_remaining,
        limiter_wait_s=round(grant.waited_s, 3),
    )
    return profile.data


async def _not_found(ctx: WorkerContext, run_id: str, item_key: str) -> str:
    """A 404 by id tombstones the stored profile. By name it does not: names get reused."""
    employee_id = employee_id_of(item_key)
    if employee_id is not None:
        services = ctx["services"]
        if await services.store.employees.tombstone(employee_id, run_id=run_id, now=utcnow()):
            services.metrics.observe_sink("tombstoned")  # only a live profile becomes a tombstone
    return "not_found"


async def _dead_letter(ctx: WorkerContext, run_id: str, item_key: str, exc: Exception, attempt: int) -> str:
    await ctx["services"].store.dead_letters.put(
        run_id=run_id,
        item_key=item_key,
        reason=str(exc) or type(exc).__name__,
        error_type=type(exc).__name__,
        status=exc.status if isinstance(exc, PermanentError) else None,
        attempts=attempt,
        now=utcnow(),
    )
    return "failed"
