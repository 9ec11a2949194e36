"""The fleet-wide "out of credits" gate: after a 402 no worker calls the API until a run is resumed.

One flag for the whole deployment: an account's keys share one credit pool, so a 402 on any
request means every request would get one.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from worker import keys
from worker.errors import QueueUnavailableError


class CreditsGate:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def exhausted(self) -> bool:
        try:
            return bool(await self._redis.exists(keys.CREDITS_EXHAUSTED))
        except RedisError as exc:
            raise QueueUnavailableError(f"credits flag unreadable: {exc}") from exc

    async def mark_exhausted(self) -> None:
        try:
            await self._redis.set(keys.CREDITS_EXHAUSTED, "1")
        except RedisError as exc:
            raise QueueUnavailableError(f"credits flag not set: {exc}") from exc

    async def clear(self) -> None:
        try:
            await self._redis.delete(keys.CREDITS_EXHAUSTED)
        except RedisError as exc:
            raise QueueUnavailableError(f"credits flag not cleared: {exc}") from exc
