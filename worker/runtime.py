"""Long-lived clients, created once per process and handed to jobs through arq's `ctx`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from config import Settings
from worker import keys
from worker.client import CoresignalClient
from worker.errors import QueueUnavailableError
from worker.limiter import RateLimiter
from worker.progress import RunProgress
from worker.queue import JobQueue
from worker.retry import RetryPolicy
from worker.stash import ProfileStash
from worker.store import MongoStore


@dataclass(slots=True)
class Services:
    """What producers, readers and workers share: Redis, MongoDB, the queue and run progress."""

    settings: Settings
    redis: aioredis.Redis
    store: MongoStore
    queue: JobQueue
    progress: RunProgress
    stash: ProfileStash

    @classmethod
    async def open(cls, settings: Settings) -> Services:
        client = aioredis.Redis.from_url(settings.redis_url, socket_timeout=10, health_check_interval=15)
        store = MongoStore.open(settings.mongodb_url, settings.mongodb_database)
        services = cls(settings, client, store, JobQueue(client), RunProgress(client), ProfileStash(client))
        try:
            await services.ping()
            await store.ensure_indexes()
        except BaseException:
            await services.close()
            raise
        return services

    async def ping(self) -> None:
        try:
            await self.redis.ping()
        except RedisError as exc:
            raise QueueUnavailableError(f"Redis did not answer: {exc}") from exc
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


def build_limiter(settings: Settings, client: aioredis.Redis, api_key: str) -> RateLimiter:
    return RateLimiter(
        client,
        api_key,
        {cls: settings.rate_per_s(cls) for cls in keys.ENDPOINT_CLASSES},
        safety_margin=settings.rate_safety_margin,
        max_ahead_s=settings.limiter_max_ahead_s,
        acquire_timeout_s=settings.job_timeout_s / 2,
    )


async def startup(ctx: dict[str, Any]) -> None:
    settings = cast(Settings, ctx["settings"])
    api_key = settings.require_api_key()
    services = await Services.open(settings)
    ctx["services"] = services
    ctx["client"] = CoresignalClient.open(
        settings.coresignal_base_url,
        api_key,
        timeout_s=settings.request_timeout_s,
        limit=settings.worker_concurrency,
    )
    ctx["limiter"] = build_limiter(settings, services.redis, api_key)
    ctx["retry"] = RetryPolicy(settings.max_tries, settings.retry_base_s, settings.retry_cap_s)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "client" in ctx:
        await cast(CoresignalClient, ctx["client"]).close()
    if "services" in ctx:
        await cast(Services, ctx["services"]).close()
