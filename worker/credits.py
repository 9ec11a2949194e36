"""The fleet-wide "out of credits" gate: after a 402 no worker calls the API until a run is resumed.

One flag for the whole deployment: an account's keys share one credit pool, so a 402 on any
request means every request would get one.

A resume bumps an epoch beside the flag. A job notes the epoch when it looks at the gate (before
its request) in a context variable of its own asyncio task; its 402 closes the gate only if no
resume came since. Otherwise the 402 answered a request sent before the credits were added, and
closing the gate again would undo the resume (review finding #26).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary, reply_or_raise

# The epoch this task saw at its last look at the gate (None: it never looked).
_SEEN_EPOCH: ContextVar[int | None] = ContextVar("credits_seen_epoch", default=None)

_CLOSE_IF_CURRENT = """
if ARGV[1] ~= '' and (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], '1')
return 1
"""


class CreditsGate:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._close = client.register_script(_CLOSE_IF_CURRENT)

    async def exhausted(self) -> bool:
        async with redis_boundary("credits flag"):
            flag, epoch = await self._redis.mget(keys.CREDITS_EXHAUSTED, keys.CREDITS_EPOCH)
        _SEEN_EPOCH.set(int(epoch or 0))
        return flag is not None

    @staticmethod
    def queue_exhausted(pipe: Any) -> None:
        """`exhausted` as one command on a caller's pipeline (the dashboard's one round trip);
        `exhausted_of` reads its reply."""
        pipe.mget(keys.CREDITS_EXHAUSTED, keys.CREDITS_EPOCH)

    @staticmethod
    def exhausted_of(reply: Any) -> bool:
        flag, epoch = reply_or_raise("credits flag", reply)
        _SEEN_EPOCH.set(int(epoch or 0))
        return flag is not None

    async def mark_exhausted(self) -> bool:
        """Close the gate; False (and nothing changed) if a resume reopened it after this task looked."""
        seen = _SEEN_EPOCH.get()
        async with redis_boundary("credits flag set"):
            closed = await self._close(
                keys=[keys.CREDITS_EXHAUSTED, keys.CREDITS_EPOCH], args=["" if seen is None else str(seen)]
            )
        return bool(closed)

    async def clear(self) -> None:
        async with redis_boundary("credits flag clear"):
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(keys.CREDITS_EPOCH)
            pipe.delete(keys.CREDITS_EXHAUSTED)
            await pipe.execute()
