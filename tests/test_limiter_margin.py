"""The adaptive margin: it follows the jitter the fleet measures, widens at once, narrows slowly.

Behaviour, not timing: what the margin does in answer to samples, 429s and a jittery simulator.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError

from config import Settings
from simulator.app import RunningSimulator, start
from simulator.config import SimulatorConfig
from worker import keys
from worker.client import COLLECT_PATH, CoresignalClient
from worker.limiter import RateLimiter
from worker.limiter_margin import (
    AdaptiveMargin,
    JitterSamples,
    ResponseTee,
    margin_for_spread,
    range_scale,
)
from worker.runtime import adaptive_margin

KEY = "m" * 32
POLICY = AdaptiveMargin(floor=0.005, ceiling=0.10, narrow_per_s=0.001, report_every_s=0.0, min_samples=32)


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean_redis)
    for cls in keys.ENDPOINT_CLASSES:  # a known, idle bucket (see tests/test_limiter.py)
        await client.set(keys.limiter_tat_key(KEY, cls), "1", px=3_600_000)
    yield client
    await client.aclose()


def adaptive(client: aioredis.Redis, rate: float = 10_000, policy: AdaptiveMargin = POLICY) -> RateLimiter:
    rates = {"collect": rate, "search": rate, "bulk": rate}
    return RateLimiter(client, KEY, rates, safety_margin=0.03, margin=policy)  # type: ignore[arg-type]


async def report(limiter: RateLimiter, samples_s: list[float]) -> float:
    """Hand the limiter these slot-to-response times, then let one acquire report them."""
    for sample in samples_s:
        limiter.observe_sample("collect", sample)
    await limiter.acquire("collect")
    return limiter.margin("collect")


def spread_of(width_s: float, count: int = 1000) -> list[float]:
    return [0.002 + width_s * i / (count - 1) for i in range(count)]


def test_the_margin_for_a_spread_keeps_n_in_a_second() -> None:
    # N slots spaced 1 / (N (1 - m)) span N / (N (1 - m)) = 1 + D seconds when m = D / (1 + D).
    for spread_s in (0.0, 0.01, 0.031, 0.05):
        assert 1 / (1 - margin_for_spread(spread_s)) == pytest.approx(1 + spread_s)


def test_the_bounds_ignore_one_outlier_in_a_thousand() -> None:
    samples = JitterSamples(window=4000)
    for i in range(3000):
        samples.add(0.150 + 0.020 * (i % 100) / 99)  # 150 ms latency, 20 ms of jitter
    samples.add(5.0)  # one stall
    assert samples.bounds_s(0.999) == pytest.approx((0.150, 0.170))
    assert samples.report(0.999) == "150000:170000:3001"


def test_a_sample_counts_only_once_its_slot_is_settled() -> None:
    # Responses come in fastest first: until every request of a slot is answered, the slow ones are
    # missing and the range falls short. So a sample waits until its slot is settle_s old.
    samples = JitterSamples(settle_s=0.1)
    samples.add(0.004, due_s=10.000)
    samples.add(0.006, due_s=10.020)  # the slot of 10.010 is still in flight
    assert samples.settled(now_s=10.105) == [0.004]
    assert samples.report(0.999, now_s=10.105) == "4000:4000:1"
    samples.add(0.024, due_s=10.010)
    assert sorted(samples.settled(now_s=10.125)) == [0.004, 0.006, 0.024]


async def test_it_starts_at_its_start_margin_and_the_first_report_sets_what_was_measured(
    redis_client: aioredis.Redis,
) -> None:
    limiter = adaptive(redis_client)
    await limiter.acquire("collect")
    assert limiter.margin("collect") == pytest.approx(POLICY.start)  # not the fixed 3 %
    # The first report is not held back by the narrowing speed: nothing was measured before it.
    assert await report(limiter, spread_of(0.010)) == pytest.approx(margin_for_spread(0.010), abs=1e-3)


def test_the_scaled_range_of_uniform_draws_falls_short_of_their_spread_one_time_in_a_hundred() -> None:
    # The reference for gcra.lua: P(range of n draws from U(0, 1) <= 1 / scale) = 1 %, for any n.
    for n in (16, 54, 200):
        x = 1 / range_scale(n, 0.01)
        assert n * x ** (n - 1) - (n - 1) * x**n == pytest.approx(0.01, rel=1e-6)
    assert range_scale(16, 0.01) > range_scale(54, 0.01) > range_scale(200, 0.01) > 1
    # The mean shortfall, (n + 1) / (n - 1), is not enough: half the time the range falls shorter.
    assert range_scale(16, 0.01) > 17 / 15


async def test_a_handful_of_samples_is_scaled_up_to_a_bound_on_the_spread_it_was_drawn_from(
    redis_client: aioredis.Redis,
) -> None:
    policy = AdaptiveMargin(report_every_s=0.0, min_samples=16)
    few = adaptive(redis_client, policy=policy)
    # Range 30 ms from 16 draws: the spread they came from is below 30 ms x 1.82 but for 0.1 % odds.
    margin = await report(few, [0.002 + 0.030 * i / 15 for i in range(16)])
    assert margin == pytest.approx(margin_for_spread(0.030 * range_scale(16, policy.range_miss)), abs=1e-5)
    await redis_client.delete(
        keys.limiter_margin_key(KEY, "collect"), keys.limiter_jitter_key(KEY, "collect")
    )
    many = adaptive(redis_client, policy=policy)  # enough samples for the quantile: no scaling
    assert await report(many, spread_of(0.050, count=2000)) < margin_for_spread(0.050)


async def test_the_fleet_pools_its_processes_so_lateness_across_hosts_counts(
    redis_client: aioredis.Redis,
) -> None:
    # Two hosts, each steady (2 ms of jitter), one 5 ms and one 45 ms from the API: a request from
    # the far host can land right behind one from the near host, so 42 ms must fit, not 2.
    near, far = adaptive(redis_client), adaptive(redis_client)
    await report(near, [0.005 + 0.002 * i / 199 for i in range(200)])
    margin = await report(far, [0.045 + 0.002 * i / 199 for i in range(200)])
    assert margin == pytest.approx(margin_for_spread(0.042 * range_scale(400, POLICY.range_miss)), abs=1e-5)


async def test_the_first_margin_waits_for_enough_samples_from_the_whole_fleet(
    redis_client: aioredis.Redis,
) -> None:
    # Four processes, each with a quarter of the grants: the first margin comes when the fleet has
    # 16 samples, not when one process has; and the report interval does not hold warm-up back.
    policy = AdaptiveMargin(report_every_s=60.0, min_samples=16)
    fleet = [adaptive(redis_client, policy=policy) for _ in range(4)]
    for i, process in enumerate(fleet[:3]):
        assert await report(process, [0.002 + 0.001 * i] * 4) == pytest.approx(policy.start)
    first = margin_for_spread(0.010 * range_scale(16, policy.range_miss))
    assert await report(fleet[3], [0.012] * 4) == pytest.approx(first, abs=1e-5)
    lone = adaptive(redis_client, policy=policy)  # a process that joins a measured fleet
    assert await report(lone, [0.003] * 4) < policy.start


async def test_slots_booked_in_warm_up_pay_the_start_margin_only_for_a_few_slots(
    redis_client: aioredis.Redis,
) -> None:
    # 40 tasks ask at once before anything is measured; a second process measures after the first
    # 16 grants. Only the slots booked before that (16 + those within `warmup_ahead_s`: 4 here)
    # may keep the start margin's spacing; booked all at once, all 40 would.
    policy = AdaptiveMargin(report_every_s=0.0, min_samples=16, warmup_ahead_s=0.02)
    rate = 200.0
    process, reporter = adaptive(redis_client, rate, policy), adaptive(redis_client, rate, policy)
    slots_us: list[int] = []

    async def one() -> None:
        grant = await process.acquire("collect")
        slots_us.append(grant.slot_us)
        if len(slots_us) == 16:
            await report(reporter, [0.002] * 16)  # the fleet's first margin: the floor

    await asyncio.gather(*(one() for _ in range(40)))
    ordered = sorted(slots_us)
    gaps_us = [b - a for a, b in itertools.pairwise(ordered)]
    start_gap_us, floor_gap_us = 1e6 / (rate * (1 - policy.start)), 1e6 / (rate * (1 - policy.floor))
    at_start = [g for g in gaps_us if g > (start_gap_us + floor_gap_us) / 2]
    assert 15 <= len(at_start) <= 16 + 4 + 1
    assert all(g == pytest.approx(floor_gap_us, abs=2) for g in gaps_us[-15:])


async def test_measured_jitter_sets_the_margin_at_once(redis_client: aioredis.Redis) -> None:
    limiter = adaptive(redis_client)
    assert await report(limiter, spread_of(0.050)) == pytest.approx(margin_for_spread(0.050), abs=1e-3)
    stored = await redis_client.hget(keys.limiter_margin_key(KEY, "collect"), "m")
    assert stored is not None and int(stored) == round(limiter.margin("collect") * 1e6)


async def test_the_margin_stays_within_floor_and_ceiling(redis_client: aioredis.Redis) -> None:
    limiter = adaptive(redis_client)
    assert await report(limiter, [0.001] * 100) == pytest.approx(POLICY.floor)
    assert await report(limiter, spread_of(0.5)) == pytest.approx(POLICY.ceiling)


async def test_the_worst_process_of_the_fleet_sets_the_margin(redis_client: aioredis.Redis) -> None:
    calm, jittery = adaptive(redis_client), adaptive(redis_client)
    await report(calm, spread_of(0.005))
    widened = await report(jittery, spread_of(0.040))
    assert widened == pytest.approx(margin_for_spread(0.040), abs=1e-3)
    assert await report(calm, spread_of(0.005)) >= widened - 0.001  # calm's report cannot undo it
    await calm.acquire("collect")
    assert calm.margin("collect") >= widened - 0.001  # and calm books with the fleet's margin


async def test_a_429_widens_the_margin_at_once(redis_client: aioredis.Redis) -> None:
    limiter = adaptive(redis_client)
    before = await report(limiter, spread_of(0.010))
    await limiter.penalize("collect", 0.0)
    await limiter.acquire("collect")
    assert limiter.margin("collect") == pytest.approx(max(2 * before, before + 0.005), abs=1e-4)


async def test_the_429s_of_one_incident_widen_it_once(redis_client: aioredis.Redis) -> None:
    limiter = adaptive(redis_client)
    before = await report(limiter, spread_of(0.010))
    for _ in range(5):  # the other requests that were in flight get their 429 too
        await limiter.penalize("collect", 0.0)
    await limiter.acquire("collect")
    assert limiter.margin("collect") == pytest.approx(2 * before, abs=1e-4)


async def test_after_a_429_it_narrows_slowly_and_not_below_what_proved_too_little(
    redis_client: aioredis.Redis,
) -> None:
    fast = AdaptiveMargin(narrow_per_s=0.05, report_every_s=0.0, min_samples=32, window=64)
    limiter = adaptive(redis_client, policy=fast)
    before = await report(limiter, spread_of(0.020, 64))
    await limiter.penalize("collect", 0.0)
    widened = 2 * before
    first = await report(limiter, [0.002] * 64)  # the jitter is gone
    assert before < first < widened  # narrowing, but not in one step
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    margin = first
    while margin > 1.25 * before + 1e-6:
        assert loop.time() < deadline, f"the margin stopped narrowing at {margin}"
        narrower = await report(limiter, [0.002] * 64)
        assert narrower <= margin
        margin = narrower
    for _ in range(20):  # held at 1.25 x the margin the 429 proved too narrow
        assert await report(limiter, [0.002] * 64) == pytest.approx(1.25 * before, abs=1e-6)


@pytest.mark.slow
async def test_without_429s_it_narrows_back_to_the_floor_when_the_jitter_stops(
    redis_client: aioredis.Redis,
) -> None:
    fast = AdaptiveMargin(narrow_per_s=0.05, report_every_s=0.0, min_samples=32, window=64)
    limiter = adaptive(redis_client, policy=fast)
    wide = await report(limiter, spread_of(0.060, 64))
    first = await report(limiter, [0.002] * 64)
    assert fast.floor < first < wide
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    margin = first
    while margin > fast.floor:
        assert loop.time() < deadline, f"the margin stopped narrowing at {margin}"
        margin = await report(limiter, [0.002] * 64)
    assert margin == pytest.approx(fast.floor)


async def test_fixed_mode_ignores_the_fleet_margin(redis_client: aioredis.Redis) -> None:
    await report(adaptive(redis_client), spread_of(0.080))
    fixed = RateLimiter(redis_client, KEY, {"collect": 100.0}, safety_margin=0.02)  # type: ignore[dict-item]
    await fixed.acquire("collect")
    assert fixed.margin("collect") == pytest.approx(0.02)
    assert fixed.effective_rate_per_s("collect") == pytest.approx(98.0)


@pytest.fixture
async def jittery_simulator() -> AsyncIterator[RunningSimulator]:
    simulator = await start(SimulatorConfig(population=100, collect_rps=1000, arrival_jitter_ms=50))
    yield simulator
    await simulator.close()


@pytest.mark.slow
async def test_a_jittery_link_widens_the_margin_and_a_calm_one_narrows_it(
    redis_client: aioredis.Redis, jittery_simulator: RunningSimulator
) -> None:
    """End to end: grants, real requests, the client's response hook, reports, the fleet margin."""

    class NoMetrics:
        def observe_response(self, endpoint_class: str, status: int | None, credits: int | None) -> None:
            pass

    policy = AdaptiveMargin(narrow_per_s=0.05, report_every_s=0.0, min_samples=32, window=64)
    limiter = RateLimiter(
        redis_client, jittery_simulator.state.config.api_keys[0], {"collect": 500.0},  # type: ignore[dict-item]
        safety_margin=0.01, margin=policy,
    )  # fmt: skip
    client = CoresignalClient.open(
        jittery_simulator.base_url, jittery_simulator.state.config.api_keys[0],
        timeout_s=5, observer=ResponseTee(NoMetrics(), limiter),
    )  # fmt: skip

    async def requests(count: int) -> None:
        async def one(i: int) -> None:
            await limiter.acquire("collect")
            response = await client.request("GET", f"{COLLECT_PATH}{10_000 + i % 50}")
            assert response.status in (200, 404)

        await asyncio.gather(*(one(i) for i in range(count)))

    try:
        await requests(100)
        await limiter.acquire("collect")
        widened = limiter.margin("collect")
        assert widened >= margin_for_spread(0.040)  # 0-50 ms of jitter measured as >= 40 ms
        jittery_simulator.state.config.arrival_jitter_ms = 0
        await requests(100)  # the 64-sample window now holds calm samples only
        await limiter.acquire("collect")
        assert limiter.margin("collect") < widened
    finally:
        await client.close()


def test_settings_choose_the_margin_mode_and_refuse_crossed_bounds() -> None:
    adaptive_settings = Settings.model_validate(
        {"limiter_margin_mode": "adaptive", "limiter_margin_floor": 0.01, "limiter_margin_ceiling": 0.08}
    )
    policy = adaptive_margin(adaptive_settings)
    assert policy is not None and (policy.floor, policy.ceiling) == (0.01, 0.08)
    assert adaptive_margin(Settings.model_validate({})) is None  # fixed is the default
    with pytest.raises(ValidationError, match="FLOOR"):
        Settings.model_validate({"limiter_margin_floor": 0.2, "limiter_margin_ceiling": 0.1})
    with pytest.raises(ValidationError, match="LIMITER_MARGIN_START"):
        Settings.model_validate({"limiter_margin_start": 0.2})  # above the 10 % ceiling
    with pytest.raises(ValueError, match="start"):
        AdaptiveMargin(floor=0.02, start=0.01)


async def test_a_fleet_back_from_idle_keeps_its_margin_until_it_has_enough_fresh_samples(
    redis_client: aioredis.Redis,
) -> None:
    # The reports of a measured fleet went stale (nobody asked for 50 ms here, 30 s in production):
    # three fresh samples cannot resolve anything, so they must not set (or scale up) the margin.
    policy = AdaptiveMargin(floor=0.005, report_every_s=0.0, min_samples=16, stale_s=0.05)
    limiter = adaptive(redis_client, policy=policy)
    measured = await report(limiter, spread_of(0.020))
    await asyncio.sleep(0.1)
    back = adaptive(redis_client, policy=policy)
    # Taken as a range of 3 they would move it: scaled to a bound (x17), widen it to 3.3 %.
    assert await report(back, [0.002, 0.003, 0.004]) == pytest.approx(measured)
    assert await report(back, [0.002 + 0.002 * i / 12 for i in range(13)]) < measured  # 16: it narrows
