"""The fleet-wide "out of credits" gate: after a 402 no worker calls the API until a run is resumed.

One flag for the whole deployment: an account's keys share one credit pool, so a 402 on any
request means every request would get one.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary


class CreditsGate:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def exhausted(self) -> bool:
        async with redis_boundary("credits flag"):
            return bool(await self._redis.exists(keys.CREDITS_EXHAUSTED))

    async def mark_exhausted(self) -> None:
        async with redis_boundary("credits flag set"):
            await self._redis.set(keys.CREDITS_EXHAUSTED, "1")

    async def clear(self) -> None:
        async with redis_boundary("credits flag clear"):
            await self._redis.delete(keys.CREDITS_EXHAUSTED)
