"""Async entry points behind the CLI commands: open services, do one thing, close them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from typing import Any, BinaryIO

from config import Settings
from jobs.bulk import bulk_request
from jobs.bulk_search import bulk_search, start_bulk_search_run
from jobs.collect import collect
from jobs.control import RecoveryReport, cancel_run, pause_run, recover_run
from jobs.deadletter import list_dead_letters, on_poison_job, requeue_dead_letters
from jobs.feeder import feeder_tick
from jobs.inputs import InputKind, Rejected, read_lines
from jobs.plan_inputs import plan_lines, plan_query
from jobs.planner import Plan
from jobs.producers import Intake, Receipt, enqueue_lines
from jobs.reconciler import reconciler_tick
from jobs.runs import RunStatus, get_status
from jobs.scheduler import run_scheduler
from jobs.search import search_page, start_search_run
from jobs.search_input import parse_search_body
from jobs.subscriptions import subscriptions_tick
from jobs.webhooks import webhook_expand, webhook_tick
from worker import keys
from worker.fleet_stats import track_in_flight
from worker.metrics import Metrics
from worker.queue import POISON_HANDLER, JobFunction, WorkerOptions, run_worker
from worker.runtime import Services, shutdown, startup
from worker.store.deadletters import DeadLetter

# Everything the fleet can run, by job name. The worker package never imports jobs itself.
# Each is counted as in flight on the worker's heartbeat while it runs (the dashboard's workers panel).
JOB_FUNCTIONS: dict[str, JobFunction] = {
    keys.COLLECT_JOB: track_in_flight(collect),
    keys.SEARCH_PAGE_JOB: track_in_flight(search_page),
    keys.WEBHOOK_EXPAND_JOB: track_in_flight(webhook_expand),
    keys.BULK_REQUEST_JOB: track_in_flight(bulk_request),
    keys.BULK_SEARCH_JOB: track_in_flight(bulk_search),
}
PERIODIC_JOBS: tuple[tuple[str, JobFunction, int], ...] = (
    (keys.FEEDER_JOB, feeder_tick, keys.FEEDER_EVERY_S),
    (keys.RECONCILER_JOB, reconciler_tick, keys.RECONCILER_EVERY_S),
    (keys.WEBHOOK_TICK_JOB, webhook_tick, keys.WEBHOOK_TICK_EVERY_S),
    (keys.SUBSCRIPTIONS_TICK_JOB, subscriptions_tick, keys.SUBSCRIPTIONS_TICK_EVERY_S),
)

MAX_PRINTED_REJECTIONS = 1000


async def run_fleet_worker(
    settings: Settings, *, burst: bool = False, metrics: Metrics | None = None
) -> None:
    """`metrics`: record into this registry (an embedding process, a test) instead of a new one."""
    settings.require_api_key()
    options = WorkerOptions(
        redis=settings.redis_target(),
        queue_name=keys.JOB_QUEUE,
        concurrency=settings.worker_concurrency,
        job_timeout_s=settings.job_timeout_s,
        max_tries=settings.max_tries,
        drain_timeout_s=settings.drain_timeout_s,
        max_worker_deaths=settings.max_worker_deaths,
        lease_s=settings.job_lease_s,
        burst=burst,
        periodic=PERIODIC_JOBS,
    )
    try:
        await run_worker(
            options,
            JOB_FUNCTIONS,
            ctx={"settings": settings, "metrics": metrics, POISON_HANDLER: on_poison_job},
            on_startup=_startup_with_scheduler,
            on_shutdown=_shutdown_with_scheduler,
        )
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        # arq cancelled its own main task after a graceful SIGTERM drain: a clean stop.


async def _startup_with_scheduler(ctx: dict[str, Any]) -> None:
    """The worker's clients, then the sync scheduler loop (only the lease holder plans)."""
    await startup(ctx)
    settings: Settings = ctx["settings"]
    if settings.sync_scheduler:
        stop = asyncio.Event()
        ctx["scheduler_stop"] = stop
        ctx["scheduler_task"] = asyncio.create_task(run_scheduler(ctx, stop))


async def _shutdown_with_scheduler(ctx: dict[str, Any]) -> None:
    task: asyncio.Task[None] | None = ctx.pop("scheduler_task", None)
    if task is not None:
        ctx.pop("scheduler_stop").set()  # the loop gives the lease up on its way out
        try:
            await asyncio.wait_for(task, timeout=10)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    await shutdown(ctx)


async def enqueue_file(
    settings: Settings,
    stream: BinaryIO,
    kind: InputKind,
    *,
    source: str,
    quiet: bool = False,
    via: str | None = None,
) -> Receipt:
    """`via` None: a plain run (collect, fresh items collected again). Else the planner's rules:
    fresh items skipped, and "auto" reads the input once to plan (the stream must be seekable)."""
    printed = 0

    def report(rejected: Rejected) -> None:
        nonlocal printed
        printed += 1
        if not quiet and printed <= MAX_PRINTED_REJECTIONS:
            print(f"rejected {rejected}", file=sys.stderr)

    services = await Services.open(settings)
    try:
        intake = Intake()
        if via is not None:
            choice = via
            if via == "auto":
                choice = (await plan_lines(services, read_lines(stream), kind, via)).choice
                stream.seek(0)
            intake = Intake(bulk=choice == "bulk", skip_fresh=True)
        return await enqueue_lines(
            services, read_lines(stream), kind, source=source, on_reject=report, intake=intake
        )
    finally:
        await services.close()


async def plan_file(settings: Settings, stream: BinaryIO, kind: InputKind, via: str) -> Plan:
    services = await Services.open(settings)
    try:
        return await plan_lines(services, read_lines(stream), kind, via)
    finally:
        await services.close()


async def plan_search_text(settings: Settings, text: str, *, max_profiles: int | None, via: str) -> Plan:
    body = parse_search_body(text)
    services = await Services.open(settings)
    try:
        return await plan_query(services, body, max_profiles, via)
    finally:
        await services.close()


async def enqueue_search(
    settings: Settings, text: str, *, max_profiles: int | None, source: str, via: str = "collect"
) -> str:
    """`via` "auto": a bulk search run whose job counts, then goes bulk or collect (BULK_MIN_ITEMS)."""
    body = parse_search_body(text)  # bad JSON, too large, too many clauses: refused before any call
    services = await Services.open(settings)
    try:
        if via == "collect":
            return await start_search_run(services, body, max_profiles=max_profiles, source=source)
        return await start_bulk_search_run(
            services, body, max_profiles=max_profiles, source=source, auto=via == "auto"
        )
    finally:
        await services.close()


async def data_requests(
    settings: Settings, *, run_id: str | None, attention: bool, limit: int
) -> list[dict[str, Any]]:
    """The ledger's rows (attention: failed, unknown, or stuck submitting), described."""
    from jobs.runs import describe_data_request, needs_attention
    from worker.run_model import DataRequestState as S

    states = [S.FAILED, S.UNKNOWN, S.SUBMITTING] if attention else None
    services = await Services.open(settings)
    try:
        rows = await services.store.ledger.listed(run_id=run_id, states=states, limit=limit)
        return [describe_data_request(r) for r in rows if not attention or needs_attention(r)]
    finally:
        await services.close()


async def resume(settings: Settings, run_id: str) -> RecoveryReport:
    services = await Services.open(settings)
    try:
        return await recover_run(services, run_id)
    finally:
        await services.close()


async def control(settings: Settings, action: str, run_id: str) -> RunStatus:
    services = await Services.open(settings)
    try:
        if action == "pause":
            return await pause_run(services, run_id)
        return await cancel_run(services, run_id)
    finally:
        await services.close()


async def run_status(settings: Settings, run_id: str) -> RunStatus | None:
    services = await Services.open(settings)
    try:
        return await get_status(services, run_id)
    finally:
        await services.close()


async def dead_letters(
    settings: Settings, action: str, run_id: str | None, reason: str | None, limit: int
) -> list[DeadLetter] | int:
    services = await Services.open(settings)
    try:
        if action == "requeue":
            return await requeue_dead_letters(services, run_id=run_id, reason=reason, limit=limit)
        return await list_dead_letters(services, run_id=run_id, reason=reason, limit=limit)
    finally:
        await services.close()


async def ping(settings: Settings) -> None:
    services = await Services.open(settings)
    await services.close()
