"""Live run counters in Redis, counted once per item even when a job runs twice (at-least-once)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from worker import keys
from worker.redis_errors import redis_boundary

# Progress keys outlive a run long enough for anyone to read them; the final counts go to MongoDB.
PROGRESS_TTL_S = 30 * 24 * 3600

# KEYS[2] maps item -> outcome. HSETNX tells whether this item was already counted; only the first
# count moves the counters. Keeping the outcome lets an undo check it (a requeue un-counts `failed`
# only if the item really ended `failed`).
_RECORD = """
local first = redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
if first == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  redis.call('HINCRBY', KEYS[1], 'processed', 1)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
local counts = redis.call('HMGET', KEYS[1], 'processed', 'accepted')
return {first, tonumber(counts[1] or '0'), tonumber(counts[2] or '-1')}
"""


# Undo one item's count (its dead-letter is being retried): the reverse of _RECORD, once, and only
# when the item's recorded outcome is the one being undone.
_UNCOUNT = """
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HINCRBY', KEYS[1], ARGV[2], -1)
  redis.call('HINCRBY', KEYS[1], 'processed', -1)
  return 1
end
return 0
"""


# Many runs' counters in one call: a page of runs is one command to send and one reply to parse,
# not a pipeline of one HGETALL per run (the dashboard reads a page every few seconds).
_COUNTS_MANY = """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('HGETALL', KEYS[i]) end
return out
"""


class RunProgress:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._record = client.register_script(_RECORD)
        self._uncount = client.register_script(_UNCOUNT)
        self._counts_many = client.register_script(_COUNTS_MANY)

    async def add(self, run_id: str, counts: Mapping[str, int]) -> None:
        async with redis_boundary("progress update"), self._redis.pipeline(transaction=True) as pipe:
            for field_name, amount in counts.items():
                pipe.hincrby(keys.run_counts_key(run_id), field_name, amount)
            pipe.expire(keys.run_counts_key(run_id), PROGRESS_TTL_S)
            await pipe.execute()

    async def set_accepted(self, run_id: str, accepted: int) -> tuple[int, int]:
        """Publish the final number of accepted items; returns (processed, accepted)."""
        async with redis_boundary("progress update"), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.run_counts_key(run_id), "accepted", str(accepted))
            pipe.hget(keys.run_counts_key(run_id), "processed")
            _, processed = await pipe.execute()
        return int(processed or 0), accepted

    async def record(self, run_id: str, item_key: str, outcome: str) -> tuple[bool, int, int]:
        """Count one item's final outcome. Returns (first time counted, processed, accepted or -1)."""
        bucket = [keys.run_counts_key(run_id), keys.run_done_key(run_id)]
        async with redis_boundary("progress update"):
            first, processed, accepted = await self._record(
                keys=bucket, args=[item_key, outcome, PROGRESS_TTL_S]
            )
        return bool(first), int(processed), int(accepted)

    async def record_many(self, run_id: str, outcomes: Sequence[tuple[str, str]]) -> tuple[int, int]:
        """Count many final outcomes in one round trip. Returns (processed, accepted or -1)."""
        if not outcomes:
            return 0, -1
        bucket = [keys.run_counts_key(run_id), keys.run_done_key(run_id)]
        async with redis_boundary("progress update"), self._redis.pipeline(transaction=False) as pipe:
            for item_key, outcome in outcomes:
                await self._record(keys=bucket, args=[item_key, outcome, PROGRESS_TTL_S], client=pipe)
            results = await pipe.execute()
        _, processed, accepted = results[-1]
        return int(processed), int(accepted)

    async def uncount(self, run_id: str, item_key: str, outcome: str) -> bool:
        bucket = [keys.run_counts_key(run_id), keys.run_done_key(run_id)]
        async with redis_boundary("progress update"):
            return bool(await self._uncount(keys=bucket, args=[item_key, outcome]))

    async def counted(self, run_id: str, item_keys: Sequence[str]) -> list[bool]:
        """Whether each item already has a final outcome in this run."""
        if not item_keys:
            return []
        async with redis_boundary("progress read"):
            flags = await self._redis.hmget(keys.run_done_key(run_id), list(item_keys))  # type: ignore[misc]
        return [f is not None for f in flags]

    async def counts(self, run_id: str) -> dict[str, int]:
        async with redis_boundary("progress read"):
            raw = await self._redis.hgetall(keys.run_counts_key(run_id))  # type: ignore[misc]
        return {_text(k): int(v) for k, v in raw.items()}

    async def counts_many(self, run_ids: Sequence[str]) -> list[dict[str, int]]:
        """`counts` of many runs in one round trip (a page of runs)."""
        if not run_ids:
            return []
        async with redis_boundary("progress read"):
            replies = await self._counts_many(keys=[keys.run_counts_key(run_id) for run_id in run_ids])
        return [{_text(k): int(v) for k, v in zip(flat[::2], flat[1::2], strict=True)} for flat in replies]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
