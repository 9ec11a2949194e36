"""Profiles collected but not yet written: a retry after a MongoDB outage must not spend a credit again.

Each stashed profile keeps the time it was fetched; the sink stamps `synced_at` with that time and
never lets it replace a newer fetch, so a stashed profile written late is never passed off as fresh.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import structlog

from worker import keys
from worker.errors import RedisUnavailableError
from worker.redis_errors import redis_boundary

log = structlog.get_logger("employee_sync.stash")

# Long enough to ride out a store outage's retries; short enough that nothing stale lingers.
STASH_TTL_S = 6 * 3600


class ProfileStash:
    """Best effort by design: when Redis itself is failing, the retry simply collects again."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def put(self, item_key: str, profile: dict[str, Any], fetched_at: datetime) -> None:
        value = json.dumps({"profile": profile, "fetched_at": fetched_at.isoformat()})
        try:
            async with redis_boundary("stash put"):
                await self._redis.set(keys.stash_key(item_key), value, ex=STASH_TTL_S)
        except RedisUnavailableError as exc:
            log.warning("stash.put_failed", error=str(exc))

    async def take(self, item_key: str) -> tuple[dict[str, Any], datetime] | None:
        """The stashed profile and when it was fetched (None: nothing usable stashed)."""
        try:
            async with redis_boundary("stash get"):
                raw = await self._redis.get(keys.stash_key(item_key))
        except RedisUnavailableError as exc:
            log.warning("stash.get_failed", error=str(exc))
            return None
        if raw is None:
            return None
        entry = json.loads(raw)
        if not isinstance(entry, dict) or not isinstance(entry.get("profile"), dict):
            return None
        try:
            fetched_at = datetime.fromisoformat(str(entry.get("fetched_at")))
        except ValueError:
            return None
        return entry["profile"], fetched_at

    async def drop(self, item_key: str) -> None:
        try:
            async with redis_boundary("stash drop"):
                await self._redis.delete(keys.stash_key(item_key))
        except RedisUnavailableError as exc:
            log.warning("stash.drop_failed", error=str(exc))
