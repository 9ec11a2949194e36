"""A fleet-wide lease on Redis: one holder at a time, taken over when the holder stops renewing.

`acquire_or_renew` is one Lua call: the holder (same token) extends its lease; anyone else gets it
only when the key has expired, and each new holder gets a new `epoch` (a fencing number written
with every tick, so a tick journal shows which holder ran it). The holder renews well inside the
TTL while it works and gives the lease up on a clean stop, so a successor waits at most one TTL
after a holder dies (SIGKILL) and never while it is alive and renewing.

The journal (`record_tick_start` / `record_tick_end`) keeps the last ticks' start and end times
on Redis time, so anyone (a test, an operator) can check that no two ticks overlapped.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Awaitable
from typing import Any, cast

import redis.asyncio as aioredis

from worker.redis_errors import redis_boundary

# KEYS: lease, epoch counter. ARGV: token, ttl ms. Returns the holder's epoch, or 0 if held by another.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if holder then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return redis.call('INCR', KEYS[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

JOURNAL_LENGTH = 1000


def _aw(value: Any) -> Awaitable[Any]:
    """redis-py types hash commands as sync-or-async; on the asyncio client they are awaitable."""
    return cast(Awaitable[Any], value)


class Lease:
    def __init__(self, client: aioredis.Redis, name: str, *, ttl_s: float, holder: str | None = None) -> None:
        self._redis = client
        self._name = name
        self._epoch_key = f"{name}:epoch"
        self._journal_key = f"{name}:journal"
        self.ttl_s = ttl_s
        # host:pid:random, so an operator (or a test) can tell which process holds it
        self.token = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def acquire_or_renew(self) -> int:
        """The epoch this holder holds the lease under, or 0 when another holder has it."""
        async with redis_boundary("lease"):
            epoch = await self._acquire(
                keys=[self._name, self._epoch_key], args=[self.token, int(self.ttl_s * 1000)]
            )
        return int(epoch)

    async def release(self) -> None:
        async with redis_boundary("lease release"):
            await self._release(keys=[self._name], args=[self.token])

    async def holder(self) -> str | None:
        async with redis_boundary("lease read"):
            raw = await self._redis.get(self._name)
        return None if raw is None else raw.decode()

    async def _now_s(self) -> float:
        seconds, micros = await self._redis.time()
        return float(seconds) + float(micros) / 1e6

    async def record_tick_start(self, epoch: int) -> str:
        """Journal a tick's start (Redis time); returns the tick's id for `record_tick_end`."""
        tick_id = uuid.uuid4().hex
        async with redis_boundary("tick journal"):
            entry = {"tick": tick_id, "holder": self.token, "epoch": epoch, "start_s": await self._now_s()}
            await _aw(self._redis.hset(self._journal_key, tick_id, json.dumps(entry)))
        return tick_id

    async def record_tick_end(self, tick_id: str) -> None:
        async with redis_boundary("tick journal"):
            raw = await _aw(self._redis.hget(self._journal_key, tick_id))
            if raw is None:
                return
            entry = json.loads(raw)
            entry["end_s"] = await self._now_s()
            await _aw(self._redis.hset(self._journal_key, tick_id, json.dumps(entry)))
            if await _aw(self._redis.hlen(self._journal_key)) > JOURNAL_LENGTH:
                await self._trim()

    async def _trim(self) -> None:
        entries = await self.journal()
        old = [e["tick"] for e in entries[: len(entries) - JOURNAL_LENGTH // 2]]
        if old:
            await _aw(self._redis.hdel(self._journal_key, *old))

    async def journal(self) -> list[dict[str, Any]]:
        """Recorded ticks, oldest first: `{tick, holder, epoch, start_s, end_s?}` (no end: it died)."""
        async with redis_boundary("tick journal"):
            raw = await _aw(self._redis.hvals(self._journal_key))
        return sorted((json.loads(r) for r in raw), key=lambda e: float(e["start_s"]))
