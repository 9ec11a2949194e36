"""Runs waiting on another run's job for an item, so one employee is collected (and paid) once.

Collect job ids are per item, so when run B's feeder finds `collect:<item>` already queued for run
A, B does not queue its own: it registers as a waiter. A's job, whatever it ends with, releases the
waiters and each of them counts the same outcome. If A's job leaves the queue without running
(A is paused or cancelled), the job is handed to a waiter instead, so the item is never orphaned.

The release leaves a one-minute marker with the outcome: a waiter that registers after the release
(between A's release and arq deleting A's job key) reads the marker instead of waiting for ever.
Queueing a new job for the item drops the marker: a waiter on the new job waits for its outcome.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary

WAITERS_TTL_S = 30 * 24 * 3600
DONE_MARKER_TTL_S = 60

# KEYS: waiters set, done marker. ARGV: run id, waiters TTL. Returns the marker's outcome or false.
_WAIT = """
local outcome = redis.call('GET', KEYS[2])
if outcome then return outcome end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return false
"""

# KEYS: waiters set, done marker. ARGV: outcome, marker TTL. Returns the waiting run ids.
_RELEASE = """
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
local runs = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
return runs
"""


class ItemWaiters:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._wait = client.register_script(_WAIT)
        self._release = client.register_script(_RELEASE)

    async def wait_for(self, item_key: str, run_id: str) -> str | None:
        """Register `run_id` as waiting; returns the outcome instead if the item just finished."""
        async with redis_boundary("waiters register"):
            raw = await self._wait(
                keys=[keys.waiters_key(item_key), keys.item_done_key(item_key)], args=[run_id, WAITERS_TTL_S]
            )
        return None if raw is None else _text(raw)

    async def release(self, item_key: str, outcome: str) -> list[str]:
        """The item has its outcome: return (and forget) the runs waiting for it."""
        async with redis_boundary("waiters release"):
            raw = await self._release(
                keys=[keys.waiters_key(item_key), keys.item_done_key(item_key)],
                args=[outcome, DONE_MARKER_TTL_S],
            )
        return sorted(_text(r) for r in raw or [])

    async def forget_outcomes(self, item_keys: Sequence[str]) -> None:
        """A new job was queued for these items: the last job's outcome no longer answers a waiter
        (one registering now waits for the new job, not for the one that just finished)."""
        if not item_keys:
            return
        async with redis_boundary("waiters forget"):
            await self._redis.delete(*[keys.item_done_key(key) for key in item_keys])

    async def waiting(self, item_key: str) -> list[str]:
        async with redis_boundary("waiters read"):
            raw = await self._redis.smembers(keys.waiters_key(item_key))  # type: ignore[misc]
        return sorted(_text(r) for r in raw)

    async def take(self, item_key: str) -> list[str]:
        """Hand-off: remove and return every waiter (the job is being re-queued for one of them)."""
        async with redis_boundary("waiters take"), self._redis.pipeline(transaction=True) as pipe:
            pipe.smembers(keys.waiters_key(item_key))
            pipe.delete(keys.waiters_key(item_key))
            raw, _ = await pipe.execute()
        return sorted(_text(r) for r in raw)

    async def add(self, item_key: str, run_ids: list[str]) -> None:
        if not run_ids:
            return
        async with redis_boundary("waiters add"), self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(keys.waiters_key(item_key), *run_ids)
            pipe.expire(keys.waiters_key(item_key), WAITERS_TTL_S)
            await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
