"""The global limiter: slots spaced fleet-wide on Redis time; a 429 anywhere slows everyone."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from worker.limiter import LimiterBusyError, RateLimiter

KEY = "k" * 32


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean_redis)
    yield client
    await client.aclose()


def limiter(client: aioredis.Redis, rate: float, **kwargs: float) -> RateLimiter:
    return RateLimiter(client, KEY, {"collect": rate, "search": rate, "bulk": rate}, **kwargs)  # type: ignore[arg-type]


def max_in_any_window(slots_us: list[int], window_us: int = 1_000_000) -> int:
    slots = sorted(slots_us)
    best, start = 0, 0
    for end, slot in enumerate(slots):
        while slot - slots[start] >= window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


async def test_slots_from_many_limiters_are_spaced_by_the_interval(redis_client: aioredis.Redis) -> None:
    # Three "workers" (separate limiter objects and connections) share one bucket.
    fleet = [limiter(redis_client, 50, safety_margin=0.0) for _ in range(3)]
    grants = await asyncio.gather(*(fleet[i % 3].acquire("collect") for i in range(60)))
    slots = sorted(g.slot_us for g in grants)
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert min(gaps) >= 20_000  # 1 / 50 rps
    assert max_in_any_window(slots) <= 50


async def test_the_safety_margin_lowers_the_effective_rate(redis_client: aioredis.Redis) -> None:
    limited = limiter(redis_client, 54, safety_margin=0.03)
    assert limited.effective_rate_per_s("collect") == pytest.approx(54 * 0.97, rel=1e-3)


async def test_classes_have_separate_buckets(redis_client: aioredis.Redis) -> None:
    limited = limiter(redis_client, 2, safety_margin=0.0)
    await limited.acquire("collect")
    started = time.monotonic()
    await limited.acquire("search")  # not behind the collect slot
    assert time.monotonic() - started < 0.25


async def test_a_penalty_seen_by_one_worker_delays_every_other_worker(redis_client: aioredis.Redis) -> None:
    worker_a = limiter(redis_client, 100, safety_margin=0.0)
    worker_b = limiter(redis_client, 100, safety_margin=0.0)
    pause_s = await worker_a.penalize("collect", 0.5)
    assert 0.5 <= pause_s <= 0.6  # Retry-After honoured, plus up to 20 % jitter
    started = time.monotonic()
    await worker_b.acquire("collect")
    assert time.monotonic() - started >= 0.45


async def test_a_slot_booked_before_a_penalty_is_booked_again_after_it(redis_client: aioredis.Redis) -> None:
    worker_a = limiter(redis_client, 4, safety_margin=0.0)
    worker_b = limiter(redis_client, 4, safety_margin=0.0)
    await worker_a.acquire("collect")  # the next free slot is now ~250 ms away
    waiting = asyncio.create_task(worker_a.acquire("collect"))
    await asyncio.sleep(0.05)
    await worker_b.penalize("collect", 0.6)  # a 429 arrives while that slot is pending
    started = time.monotonic()
    grant = await waiting
    assert time.monotonic() - started >= 0.5
    cooldown = await redis_client.get(next(iter(await redis_client.keys("*cooldown"))))
    assert cooldown is not None and grant.slot_us >= int(cooldown)


async def test_acquire_gives_up_after_its_timeout_with_a_transient_error(
    redis_client: aioredis.Redis,
) -> None:
    slow = limiter(redis_client, 1, safety_margin=0.0, max_ahead_s=0.1, acquire_timeout_s=0.3)
    await slow.penalize("collect", 5)
    with pytest.raises(LimiterBusyError):
        await slow.acquire("collect")


async def test_bucket_keys_do_not_contain_the_api_key(redis_client: aioredis.Redis) -> None:
    await limiter(redis_client, 10).acquire("collect")
    names = [k.decode() for k in await redis_client.keys("*")]
    assert names and not any(KEY in name for name in names)
