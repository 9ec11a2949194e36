"""The limiter's own back-pressure (`LimiterBusyError`) is retried, deferred, and never dead-lettered.

Review #1: a long 429 cool-down, or more job slots in flight than the booking horizon holds, made
`acquire` give up at once and every give-up used one of the item's MAX_TRIES.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from worker import keys
from worker.errors import RateLimitedError, RedisUnavailableError, StoreUnavailableError
from worker.limiter import LimiterBusyError, RateLimiter
from worker.retry import RetryPolicy

KEY = "b" * 32


def test_limiter_busy_is_retried_after_its_wait_whatever_the_attempt() -> None:
    policy = RetryPolicy(max_tries=3, base_s=0.5, rng=random.Random(7))
    for attempt in (1, 3, 4, 50, 500):
        step = policy.next_step(LimiterBusyError("busy", retry_after_s=30.0), attempt)
        assert step is not None, f"dead-lettered at attempt {attempt}"
        assert 30.0 <= step.defer_s <= 33.0  # the wait, plus jitter of up to 10 % of it


def test_a_short_busy_wait_still_gets_jitter_of_up_to_base() -> None:
    policy = RetryPolicy(max_tries=3, base_s=0.5, rng=random.Random(7))
    delays = [policy.next_step(LimiterBusyError("busy", retry_after_s=0.0), 9) for _ in range(200)]
    defers = [d.defer_s for d in delays if d is not None]
    assert len(defers) == 200 and min(defers) >= 0.0 and max(defers) <= 0.5
    assert len(set(defers)) > 100  # spread, not one instant


def test_an_upstream_429_still_counts_toward_max_tries() -> None:
    policy = RetryPolicy(max_tries=3)
    assert policy.next_step(RateLimitedError("429", retry_after_s=1.0), 2) is not None
    assert policy.next_step(RateLimitedError("429", retry_after_s=1.0), 3) is None


def test_store_outages_are_still_retried_without_limit() -> None:
    policy = RetryPolicy(max_tries=3)
    assert policy.next_step(StoreUnavailableError("mongo"), 40) is not None
    assert policy.next_step(RedisUnavailableError("redis"), 40) is not None


@pytest.fixture
async def pooled_redis(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    # Hundreds of tasks share 32 connections, as a worker process shares its pool.
    pool = aioredis.BlockingConnectionPool.from_url(clean_redis, max_connections=32, timeout=30)
    client = aioredis.Redis(connection_pool=pool)
    for cls in keys.ENDPOINT_CLASSES:  # a known, idle bucket (see tests/test_limiter.py)
        await client.set(keys.limiter_tat_key(KEY, cls), "1", px=3_600_000)
    yield client
    await client.aclose()
    await pool.disconnect()


async def _job(limiter: RateLimiter, policy: RetryPolicy, tries: list[int], busy: list[float]) -> None:
    """One job as the queue runs it: acquire; on LimiterBusyError ask the policy, defer, try again."""
    attempt = 1
    while True:
        try:
            await limiter.acquire("collect")
        except LimiterBusyError as exc:
            step = policy.next_step(exc, attempt)
            assert step is not None, f"LimiterBusyError would dead-letter the job at try {attempt}"
            busy.append(exc.retry_after_s)
            await asyncio.sleep(step.defer_s)
            attempt += 1
            continue
        tries.append(attempt)
        return


@pytest.mark.slow
async def test_500_concurrent_jobs_through_a_long_cool_down_are_never_dead_lettered(
    pooled_redis: aioredis.Redis,
) -> None:
    """Real Redis, one process, 500 asyncio tasks on 4 limiter objects ("workers").

    The scaled-down shape of review #1: a horizon of 25 slots, an acquire timeout of 0.15 s and a
    cool-down (0.6 s) longer than both, with MAX_TRIES 2, so every job that meets the cool-down or
    the queue gets LimiterBusyError several times over. No 429 happens: nothing may be dead-lettered.
    """
    fleet = [
        RateLimiter(
            pooled_redis, KEY, {"collect": 500.0}, safety_margin=0.0,  # type: ignore[dict-item]
            max_ahead_s=0.05, acquire_timeout_s=0.15, rng=random.Random(i),
        )
        for i in range(4)
    ]  # fmt: skip
    policy = RetryPolicy(max_tries=2, base_s=0.05, rng=random.Random(1))
    await fleet[0].penalize("collect", 0.5)
    tries: list[int] = []
    busy: list[float] = []
    jobs = [_job(fleet[i % 4], policy, tries, busy) for i in range(500)]
    await asyncio.wait_for(asyncio.gather(*jobs), timeout=60)
    assert len(tries) == 500  # every job got its slot in the end
    assert len(busy) > 500  # the back-pressure path really ran, many times
    assert max(tries) > policy.max_tries  # ... past MAX_TRIES, which only 429s and errors use up
    assert max(busy) >= 0.3  # some refusals reported (part of) the cool-down as their wait
