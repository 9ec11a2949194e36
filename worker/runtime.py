"""Long-lived clients, created once per process and handed to jobs through arq's `ctx`."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

import redis.asyncio as aioredis
from aiohttp import web

from config import Settings
from worker import keys
from worker.client import CoresignalClient
from worker.credits import CreditsGate
from worker.fleet_stats import FLEET_RECORDER, Fanout, FleetRecorder
from worker.limiter import GrantObserver, RateLimiter
from worker.limiter_margin import AdaptiveMargin, ResponseTee
from worker.metrics import Metrics
from worker.metrics_server import start_metrics_server
from worker.progress import RunProgress
from worker.queue import JOB_OBSERVER, JobQueue
from worker.redis_connect import open_redis
from worker.redis_errors import redis_boundary
from worker.retry import RetryPolicy
from worker.stash import ProfileStash
from worker.store import MongoStore
from worker.waiters import ItemWaiters


@dataclass(slots=True)
class Services:
    """What producers, readers and workers share: Redis, MongoDB, the queue and run progress."""

    settings: Settings
    redis: aioredis.Redis
    store: MongoStore
    queue: JobQueue
    progress: RunProgress
    stash: ProfileStash
    credits: CreditsGate
    waiters: ItemWaiters
    metrics: Metrics

    @classmethod
    async def open(cls, settings: Settings, *, metrics: Metrics | None = None) -> Services:
        """`metrics`: share one registry with an embedding process (tests, the demo); default a new one."""
        client = open_redis(settings.redis_target(), socket_timeout=10, health_check_interval=15)
        store = MongoStore.open(settings.mongodb_url, settings.mongodb_database)
        services = cls(
            settings=settings,
            redis=client,
            store=store,
            queue=JobQueue(client),
            progress=RunProgress(client),
            stash=ProfileStash(client),
            credits=CreditsGate(client),
            waiters=ItemWaiters(client),
            metrics=metrics or Metrics(),
        )
        services.metrics.set_limits({cls: settings.rate_per_s(cls) for cls in keys.ENDPOINT_CLASSES})
        try:
            await services.ping()
            await store.ensure_indexes()
        except BaseException:
            await services.close()
            raise
        return services

    async def ping(self) -> None:
        async with redis_boundary("ping"):
            await self.redis.ping()
        await self.store.ping()

    async def close(self) -> None:
        await self.store.close()
        await self.redis.aclose()


class WorkerContext(TypedDict):
    """arq's ctx as our jobs see it: our clients plus what arq adds per job."""

    settings: Settings
    services: Services
    client: CoresignalClient
    limiter: RateLimiter
    retry: RetryPolicy
    job_id: NotRequired[str]
    job_try: NotRequired[int]


def adaptive_margin(settings: Settings) -> AdaptiveMargin | None:
    if settings.limiter_margin_mode == "fixed":
        return None
    return AdaptiveMargin(
        floor=settings.limiter_margin_floor,
        ceiling=settings.limiter_margin_ceiling,
        start=settings.limiter_margin_start,
        narrow_per_s=settings.limiter_margin_narrow_per_s,
    )


def build_limiter(
    settings: Settings, client: aioredis.Redis, api_key: str, *, observer: GrantObserver | None = None
) -> RateLimiter:
    return RateLimiter(
        client,
        api_key,
        {cls: settings.rate_per_s(cls) for cls in keys.ENDPOINT_CLASSES},
        safety_margin=settings.rate_safety_margin,
        margin=adaptive_margin(settings),
        max_ahead_s=settings.limiter_max_ahead_s,
        acquire_timeout_s=settings.job_timeout_s * 0.3,
        retry_after_cap_s=settings.retry_after_cap_s,
        default_retry_after_s=settings.default_retry_after_s,
        observer=observer,
    )


def settle_heap() -> None:
    """Collect once, then keep what is alive out of every later collection (`gc.freeze`).

    For a worker process, called once everything is imported: the modules, classes and settings of
    start-up are never scanned again, so a collection mid-run scans only what the run allocated.
    Without it, each of 8 bench processes (`bench peers`, 8x8) paused 7-13 ms for a generation-1
    collection in its first seconds, and 40-150 ms for its first full one: a request due in such a
    pause leaves late, and a response read late widens the adaptive margin for every process.
    What it costs: start-up objects that die later are not freed if they sit in a reference cycle.
    """
    gc.collect()
    gc.freeze()


async def startup(ctx: dict[str, Any]) -> None:
    """`ctx` may carry a `metrics` (a `Metrics`) to record into instead of a new registry."""
    settings = cast(Settings, ctx["settings"])
    api_key = settings.require_api_key()
    services = await Services.open(settings, metrics=cast(Metrics | None, ctx.get("metrics")))
    ctx["services"] = services
    # Fleet-wide live figures for the dashboard, fed by the same hooks as this process's metrics.
    recorder = FleetRecorder(services.redis, api_key=api_key, concurrency=settings.worker_concurrency)
    observer = Fanout(services.metrics, recorder)
    ctx[FLEET_RECORDER] = recorder
    limiter = build_limiter(settings, services.redis, api_key, observer=observer)
    ctx["limiter"] = limiter
    ctx["client"] = CoresignalClient.open(
        settings.coresignal_base_url,
        api_key,
        timeout_s=settings.request_timeout_s,
        limit=settings.worker_concurrency,
        # The limiter learns the fleet's jitter from the responses to the slots it granted.
        observer=ResponseTee(observer, limiter),
        secrets=settings.secrets(),
        retry_after_cap_s=settings.retry_after_cap_s,
    )
    ctx["retry"] = RetryPolicy(settings.max_tries, settings.retry_base_s, settings.retry_cap_s)
    ctx[JOB_OBSERVER] = services.metrics.observe_job
    recorder.start()
    if settings.metrics_port is not None:
        try:
            ctx["metrics_server"] = await start_metrics_server(
                services, settings.metrics_host, settings.metrics_port
            )
        except BaseException:
            await shutdown(ctx)
            raise


async def shutdown(ctx: dict[str, Any]) -> None:
    """Close what startup opened; safe to call twice (startup calls it when it fails half-way)."""
    recorder = ctx.pop(FLEET_RECORDER, None)
    if recorder is not None:
        await cast(FleetRecorder, recorder).stop()
    server = ctx.pop("metrics_server", None)
    if server is not None:
        await cast(web.AppRunner, server).cleanup()
    if "client" in ctx:
        await cast(CoresignalClient, ctx.pop("client")).close()
    if "services" in ctx:
        await cast(Services, ctx.pop("services")).close()
