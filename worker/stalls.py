"""How long each suspect run has looked the same: the reconciler's memory between ticks, in Redis.

Any worker may run the next tick, so the memory cannot live in one process. If Redis loses it, the
watch starts again: a stalled run is then noticed one wait later, never wrongly.
"""

from __future__ import annotations

from collections.abc import Collection

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary

STALLS_KEY = f"{keys.PREFIX}:reconciler:stalls"
STALLS_TTL_S = 24 * 3600

# KEYS[1]: hash run id -> "since_ms|signature". ARGV: run id, signature, TTL. Returns how many ms the
# run has shown this signature (0 the first time, or when it changed). Redis TIME: one clock.
_NOTE = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = redis.call('HGET', KEYS[1], ARGV[1])
if prev then
  local sep = string.find(prev, '|', 1, true)
  if sep and string.sub(prev, sep + 1) == ARGV[2] then
    return now_ms - tonumber(string.sub(prev, 1, sep - 1))
  end
end
redis.call('HSET', KEYS[1], ARGV[1], now_ms .. '|' .. ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 0
"""


class StallWatch:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._note = client.register_script(_NOTE)

    async def unchanged_for_s(self, run_id: str, signature: str) -> float:
        """Note what the run looks like now; returns for how long it has looked exactly like this."""
        async with redis_boundary("stall watch"):
            return int(await self._note(keys=[STALLS_KEY], args=[run_id, signature, STALLS_TTL_S])) / 1000

    async def keep_only(self, run_ids: Collection[str]) -> None:
        """Forget every run but these (they recovered, progressed, or are no longer running)."""
        async with redis_boundary("stall watch"):
            known = {k.decode() for k in await self._redis.hkeys(STALLS_KEY)}  # type: ignore[misc]
            gone = known - set(run_ids)
            if gone:
                await self._redis.hdel(STALLS_KEY, *gone)  # type: ignore[misc]
