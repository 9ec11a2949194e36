"""The fleet-wide sync scheduler: every worker runs this loop; only the lease holder plans.

Each `SYNC_TICK_S` a worker takes or renews the lease (`worker.lease`). The holder runs one tick:
for each due sync it settles the sync's previous run (moving a query sync's watermark only once
that run finished with every delta profile committed), plans the delta and the sweep
(`jobs.sync_plan`), reserves the credits, creates an ordinary run of kind `sync` and sets the next
due time. While a tick runs the holder renews the lease every third of its TTL; if a renewal finds
the lease gone (the holder stalled past the TTL and another took it), the tick is cancelled, so two
ticks never run at once. A holder that dies stops renewing and another worker takes over once the
TTL lapses (5 s by default). A sync with `--webhooks` also makes sure, at each tick, that its
selection is subscribed (`jobs.sync_webhooks`).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

import structlog

from jobs.control import cancel_run
from jobs.sync_plan import Plan, budget_reason, plan_delta, plan_sweep, plan_sweep_items
from jobs.sync_runs import delta_ids, start_sync_run
from jobs.sync_webhooks import ensure_subscriptions
from worker import keys
from worker.errors import EmployeeSyncError, TransientError
from worker.lease import Lease
from worker.run_model import RunState, utcnow
from worker.runtime import Services, WorkerContext
from worker.sync_budget import SyncBudgets
from worker.sync_model import Sync, SyncSource

log = structlog.get_logger("employee_sync.scheduler")

# A sync run whose planner died before publishing its inputs is given up after this long.
STALE_UNPUBLISHED_S = 60.0
# A sync whose tick failed (the API refused its query, a store away) is tried again after this.
RETRY_FAILED_TICK_S = 30.0


def budgets_of(services: Services) -> SyncBudgets:
    settings = services.settings
    return SyncBudgets(
        services.redis, period_s=settings.sync_budget_period_s, global_limit=settings.sync_credits_per_day
    )


async def settle_previous(services: Services, sync: Sync) -> bool:
    """Deal with the sync's last run. True when the sync may be planned again (no run in flight)."""
    assert sync.current_run_id is not None
    store, run = services.store, await services.store.runs.get(sync.current_run_id)
    if run is None or run.state in (RunState.FAILED, RunState.CANCELLED):
        await store.syncs.release_run(sync.name, sync.current_run_id)
        return True
    if run.state is RunState.FINISHED:
        if run.finished_at is not None:
            sync.last_plan["lead_s"] = (run.finished_at - run.created_at).total_seconds()
        watermark = sync.watermark
        complete = run.sync is not None and run.sync.delta_complete
        if sync.source is SyncSource.QUERY and complete and not run.final_counts.get("failed"):
            ids = [i async for i in delta_ids(services, run)]
            seen = [str(v) for v in (await store.employees.last_updated_of(ids)).values() if v]
            if seen:
                watermark = max([*seen, *([watermark] if watermark else [])])
            # Every change up to the delta's search is now in the mirror: all matching members
            # are current as of the run's creation (the search ran just before it).
            await store.syncs.mark_verified(sync.name, None, run.created_at)
        await store.syncs.advance_watermark(
            sync.name, expected=sync.watermark, new=watermark, run_id=run.run_id
        )
        return True
    age_s = (utcnow() - run.created_at).total_seconds()
    if not run.inputs_complete and age_s > STALE_UNPUBLISHED_S:
        log.warning("sync.abandoned_run", sync=sync.name, run_id=run.run_id)
        await cancel_run(services, run.run_id)
        await store.syncs.release_run(sync.name, run.run_id)
        return True
    return False


async def _watermark_from_mirror(services: Services, sync: Sync, found: list[int]) -> None:
    seen = [str(v) for v in (await services.store.employees.last_updated_of(found)).values() if v]
    if seen:
        newest = max([*seen, *([sync.watermark] if sync.watermark else [])])
        await services.store.syncs.advance_watermark(
            sync.name, expected=sync.watermark, new=newest, run_id=None
        )


async def tick_sync(ctx: WorkerContext, sync: Sync) -> str:
    """Plan one due sync and start its run; returns what happened (for the log)."""
    services = ctx["services"]
    if sync.current_run_id is not None:
        if not await settle_previous(services, sync):
            return "waiting: previous run still running"
        refreshed = await services.store.syncs.get(sync.name)
        if refreshed is None:
            return "gone"
        refreshed.last_plan["lead_s"] = sync.last_plan.get("lead_s", 0.0)  # as settling measured it
        sync = refreshed
    if sync.webhooks:  # here, not before settling: a tick waiting on its run re-runs every pass
        log.info("sync.webhooks", outcome=await ensure_subscriptions(ctx, sync))
    now, budgets = utcnow(), budgets_of(services)
    view = await budgets.view(sync.name, sync.credits_per_day)
    room, plan, changed = view.remaining(), Plan(), list[int]()
    plan.lead_s = float(sync.last_plan.get("lead_s") or 0.0)
    if sync.source is SyncSource.QUERY:
        changed = await plan_delta(ctx, sync, plan)
        if room is not None and len(changed) > room:
            changed, plan.delta_complete = changed[:room], False
        plan.delta = [f"id:{i}" for i in changed]
        room = None if room is None else room - len(plan.delta)
    if sync.source is SyncSource.QUERY and plan.delta_complete and not plan.delta:
        # The delta found nothing that differs: every matching member is current as of now, and
        # the watermark may move to the newest last_updated the mirror holds among what it found.
        await services.store.syncs.mark_verified(sync.name, None, now)
        await _watermark_from_mirror(services, sync, plan.found_ids)
    plan.sweep = await plan_sweep_items(ctx, sync, changed, room, plan)
    plan.via = plan_sweep(services.settings, plan.delta + plan.sweep)
    planned = len(plan.delta) + len(plan.sweep)
    if (room is not None and plan.sweep_due > room) or not plan.delta_complete:
        plan.sweep_paused_reason = budget_reason(view, planned, budgets.period_s)
    await budgets.reserve(sync.name, view.period, planned)
    services.metrics.observe_sync_credits(sync.name, planned)
    run_id = await start_sync_run(services, sync, plan) if planned else None
    await services.store.syncs.record_tick(
        sync.name,
        expected_run_id=None,
        run_id=run_id,
        now=now,
        next_due_at=now + timedelta(seconds=sync.every_s),
        plan=plan.summary(),
        sweep_paused_reason=plan.sweep_paused_reason,
    )
    return f"run {run_id}: {len(plan.delta)} delta, {len(plan.sweep)} sweep" if run_id else "nothing due"


async def scheduler_tick(ctx: WorkerContext) -> int:
    """One pass over the due syncs; returns how many were looked at."""
    services = ctx["services"]
    due = await services.store.syncs.due(utcnow())
    for sync in due:
        structlog.contextvars.bind_contextvars(sync=sync.name)
        began = utcnow()
        try:
            log.info("sync.tick", outcome=await tick_sync(ctx, sync))
        except (EmployeeSyncError, ArithmeticError, ValueError) as exc:  # one sync never starves the rest
            log.warning("sync.tick_failed", error=str(exc))
            with contextlib.suppress(TransientError):
                await services.store.syncs.record_tick(
                    sync.name,
                    expected_run_id=None,
                    run_id=None,
                    # When the tick began, as a good tick records it: a run-now made while this one
                    # was failing is then kept (record_tick), not put off by the retry delay.
                    now=began,
                    next_due_at=utcnow() + timedelta(seconds=min(sync.every_s, RETRY_FAILED_TICK_S)),
                    plan={"error": str(exc)},
                    sweep_paused_reason=sync.sweep_paused_reason,
                )
        finally:
            structlog.contextvars.unbind_contextvars("sync")
    return len(due)


async def _tick_holding(ctx: WorkerContext, lease: Lease, epoch: int) -> None:
    tick_id = await lease.record_tick_start(epoch)
    task = asyncio.create_task(scheduler_tick(ctx))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=lease.ttl_s / 3)
            if done:
                break
            if await lease.acquire_or_renew() != epoch:
                log.warning("sync.lease_lost", epoch=epoch)
                task.cancel()
                break
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        if not task.done():
            task.cancel()
        await lease.record_tick_end(tick_id)


async def run_scheduler(ctx: dict[str, Any], stop: asyncio.Event) -> None:
    """The loop every worker runs (started with the worker, stopped with it)."""
    wctx: WorkerContext = ctx  # type: ignore[assignment]
    services, settings = wctx["services"], wctx["settings"]
    lease = Lease(services.redis, keys.SYNC_SCHEDULER_LEASE, ttl_s=settings.sync_lease_ttl_s)
    try:
        while not stop.is_set():
            try:
                epoch = await lease.acquire_or_renew()
                if epoch:
                    await _tick_holding(wctx, lease, epoch)
            except TransientError as exc:
                log.warning("sync.scheduler_unavailable", error=str(exc))
            except Exception:  # a bug in one tick must not stop the fleet's scheduling for good
                log.exception("sync.scheduler_error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.sync_tick_s)
    finally:
        with contextlib.suppress(Exception):
            await lease.release()
