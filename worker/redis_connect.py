"""Opening a Redis client for a `RedisTarget`: one server, or the primary Redis Sentinel names.

Through Sentinel, every new connection asks the sentinels where the primary is, so after a failover
the next command (a job's retry, the worker's reconnect) reaches the promoted replica. A connection
to a server that became a replica answers READONLY; redis-py then drops it and asks again.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel

from config.redis_target import RedisTarget

# How long to wait for one sentinel before asking the next.
SENTINEL_TIMEOUT_S = 2.0


class SentinelManagedRedis(aioredis.Redis):
    """A client of the Sentinel-named primary that also closes its connections to the sentinels."""

    owned_sentinel: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.owned_sentinel is not None:
            for client in self.owned_sentinel.sentinels:
                await client.aclose()


def open_redis(target: RedisTarget, **options: Any) -> aioredis.Redis:
    """A client for `target`; `options` are redis-py connection options (socket_timeout, ...)."""
    if not target.uses_sentinel:
        return cast(aioredis.Redis, aioredis.Redis.from_url(target.url, **options))
    timeouts = {"socket_timeout": SENTINEL_TIMEOUT_S, "socket_connect_timeout": SENTINEL_TIMEOUT_S}
    sentinel = Sentinel(list(target.sentinels), sentinel_kwargs=timeouts)  # type: ignore[no-untyped-call]
    client = sentinel.master_for(
        target.master,
        redis_class=SentinelManagedRedis,
        db=target.db,
        username=target.username,
        password=target.password,
        **options,
    )
    managed = cast(SentinelManagedRedis, client)
    managed.owned_sentinel = sentinel
    return managed
