"""The global limiter: slots spaced fleet-wide on Redis time; a 429 anywhere slows everyone."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from worker import keys
from worker.limiter import LimiterBusyError, RateLimiter

KEY = "k" * 32


async def known_idle_buckets(client: aioredis.Redis) -> None:
    """Buckets that were used before and went idle (not lost), so a first slot is free at once.

    A missing TAT means lost state and starts one horizon ahead (tested below); most tests here
    are about what happens after that, so they start from an idle bucket instead.
    """
    for cls in keys.ENDPOINT_CLASSES:
        await client.set(keys.limiter_tat_key(KEY, cls), "1", px=3_600_000)


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean_redis)
    await known_idle_buckets(client)
    yield client
    await client.aclose()


def limiter(client: aioredis.Redis, rate: float, **kwargs: float | None) -> RateLimiter:
    return RateLimiter(client, KEY, {"collect": rate, "search": rate, "bulk": rate}, **kwargs)  # type: ignore[arg-type]


def max_in_any_window(slots_us: list[int], window_us: int = 1_000_000) -> int:
    slots = sorted(slots_us)
    best, start = 0, 0
    for end, slot in enumerate(slots):
        while slot - slots[start] >= window_us:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.slow
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


@pytest.mark.slow
async def test_a_penalty_seen_by_one_worker_delays_every_other_worker(redis_client: aioredis.Redis) -> None:
    worker_a = limiter(redis_client, 100, safety_margin=0.0)
    worker_b = limiter(redis_client, 100, safety_margin=0.0)
    pause_s = await worker_a.penalize("collect", 0.5)
    assert 0.5 <= pause_s <= 0.6  # Retry-After honoured, plus up to 20 % jitter
    started = time.monotonic()
    await worker_b.acquire("collect")
    assert time.monotonic() - started >= 0.45


async def test_a_429_without_retry_after_pauses_for_the_configured_default(
    redis_client: aioredis.Redis,
) -> None:
    worker = limiter(redis_client, 100, safety_margin=0.0, default_retry_after_s=0.4)
    pause_s = await worker.penalize("collect", None)
    assert 0.4 <= pause_s <= 0.48  # the default, plus up to 20 % jitter


@pytest.mark.slow
async def test_a_slot_booked_before_a_penalty_is_booked_again_after_it(redis_client: aioredis.Redis) -> None:
    worker_a = limiter(redis_client, 4, safety_margin=0.0)
    worker_b = limiter(redis_client, 4, safety_margin=0.0)
    await worker_a.acquire("collect")  # the next free slot is now ~250 ms away
    tat_key = keys.limiter_tat_key(KEY, "collect")
    tat_before = await redis_client.get(tat_key)
    waiting = asyncio.create_task(worker_a.acquire("collect"))
    deadline = time.monotonic() + 5
    while await redis_client.get(tat_key) == tat_before:  # until that slot is booked, not a guess
        assert time.monotonic() < deadline, "the second slot was never booked"
        await asyncio.sleep(0.001)
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


async def slots_of(fleet: list[RateLimiter], count: int) -> list[int]:
    grants = await asyncio.gather(*(fleet[i % len(fleet)].acquire("collect") for i in range(count)))
    return [g.slot_us for g in grants]


async def server_now_us(client: aioredis.Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1_000_000 + int(micros)


@pytest.mark.slow
async def test_a_flush_with_slots_booked_ahead_never_doubles_the_rate(redis_client: aioredis.Redis) -> None:
    # Review #16: slots booked before a FLUSHDB still fire; bookings after it must not share their second.
    # No late-slot guard: a task of `before` that woke late would book again after the flush, and
    # its new slot (rightly) belongs with `after` (tests/test_limiter_lateness.py).
    fleet = [limiter(redis_client, 54, max_ahead_s=1.0, late_limit_s=None) for _ in range(2)]
    horizon = round(1.0 * 54 * 0.97) + 1  # slots within one horizon of now: all book at once
    before = asyncio.create_task(slots_of(fleet, horizon))
    tat_key = keys.limiter_tat_key(KEY, "collect")
    deadline = time.monotonic() + 10
    while int(await redis_client.get(tat_key) or 0) - await server_now_us(redis_client) < 950_000:
        assert time.monotonic() < deadline, "the horizon was never booked"
        await asyncio.sleep(0.01)
    await redis_client.flushdb()
    after = await slots_of(fleet, horizon)
    slots = await before + after
    assert max_in_any_window(slots) <= 54
    assert min(after) > max(await before)


async def test_a_lost_bucket_restarts_one_interval_past_the_horizon(redis_client: aioredis.Redis) -> None:
    await redis_client.flushdb()
    fresh = limiter(redis_client, 10, safety_margin=0.0, max_ahead_s=0.3)
    now_us = await server_now_us(redis_client)
    grant = await fresh.acquire("collect")
    assert grant.slot_us >= now_us + 300_000 + 100_000


async def test_a_penalty_after_a_flush_still_clears_the_old_horizon(redis_client: aioredis.Redis) -> None:
    await redis_client.flushdb()
    fresh = limiter(redis_client, 10, safety_margin=0.0, max_ahead_s=0.3)
    now_us = await server_now_us(redis_client)
    await fresh.penalize("collect", 0.05)  # a short cool-down must not pull the start into the horizon
    grant = await fresh.acquire("collect")
    assert grant.slot_us >= now_us + 300_000 + 100_000


async def test_a_cool_down_that_fits_the_timeout_is_slept_through(redis_client: aioredis.Redis) -> None:
    patient = limiter(redis_client, 100, max_ahead_s=0.1, acquire_timeout_s=2.0)
    pause_s = await patient.penalize("collect", 0.4)
    grant = await patient.acquire("collect")
    cooldown = await redis_client.get(keys.limiter_cooldown_key(KEY, "collect"))
    assert cooldown is not None and grant.slot_us >= int(cooldown)
    assert grant.waited_s >= pause_s - 0.1  # it waited for the cool-down rather than giving up


async def test_a_busy_limiter_says_how_long_until_a_booking_can_succeed(redis_client: aioredis.Redis) -> None:
    slow = limiter(redis_client, 1, max_ahead_s=0.1, acquire_timeout_s=0.3)
    pause_s = await slow.penalize("collect", 5)
    with pytest.raises(LimiterBusyError) as raised:
        await slow.acquire("collect")
    # The remaining cool-down minus the horizon (plus the refusal pause's own jitter of <= 50 ms).
    assert pause_s - 0.1 - 0.05 <= raised.value.retry_after_s <= pause_s


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
async def test_penalize_refuses_a_non_finite_retry_after(redis_client: aioredis.Redis, bad: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        await limiter(redis_client, 10).penalize("collect", bad)
    assert await redis_client.get(keys.limiter_cooldown_key(KEY, "collect")) is None


async def test_penalize_caps_a_huge_retry_after(redis_client: aioredis.Redis) -> None:
    capped = limiter(redis_client, 10, retry_after_cap_s=120.0)
    now_us = await server_now_us(redis_client)
    assert await capped.penalize("collect", 280_000_000.0) == 120.0
    cooldown = await redis_client.get(keys.limiter_cooldown_key(KEY, "collect"))
    assert cooldown is not None and int(cooldown) - now_us <= 121_000_000
    ttl_ms = await redis_client.pttl(keys.limiter_cooldown_key(KEY, "collect"))
    assert 0 < ttl_ms <= 181_000  # the key goes away on its own a minute after the cool-down
