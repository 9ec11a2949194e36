"""Profiles collected but not yet written: a retry after a MongoDB outage must not spend a credit again."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis
import structlog

from worker import keys
from worker.errors import RedisUnavailableError
from worker.redis_errors import redis_boundary

log = structlog.get_logger("employee_sync.stash")

STASH_TTL_S = 24 * 3600


class ProfileStash:
    """Best effort by design: when Redis itself is failing, the retry simply collects again."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def put(self, item_key: str, profile: dict[str, Any]) -> None:
        try:
            async with redis_boundary("stash put"):
                await self._redis.set(keys.stash_key(item_key), json.dumps(profile), ex=STASH_TTL_S)
        except RedisUnavailableError as exc:
            log.warning("stash.put_failed", error=str(exc))

    async def take(self, item_key: str) -> dict[str, Any] | None:
        try:
            async with redis_boundary("stash get"):
                raw = await self._redis.get(keys.stash_key(item_key))
        except RedisUnavailableError as exc:
            log.warning("stash.get_failed", error=str(exc))
            return None
        if raw is None:
            return None
        profile = json.loads(raw)
        return profile if isinstance(profile, dict) else None

    async def drop(self, item_key: str) -> None:
        try:
            async with redis_boundary("stash drop"):
                await self._redis.delete(keys.stash_key(item_key))
        except RedisUnavailableError as exc:
            log.warning("stash.drop_failed", error=str(exc))
