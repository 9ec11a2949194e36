"""Fleet-wide live figures: what two workers' recorders write is what one reader sees, on real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.conftest import TEST_API_KEY
from worker import keys
from worker.credits import CreditsGate
from worker.fleet_stats import FLEET_RECORDER, FleetRecorder, track_in_flight
from worker.fleet_view import SETTLE_S, read_fleet, read_fleet_with
from worker.queue import JobQueue, JobSpec

LIMITS = {"collect": 54.0, "search": 18.0, "bulk": 27.0}


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean_redis)
    yield client
    await client.aclose()


async def redis_now_s(client: aioredis.Redis) -> float:
    seconds, micros = await client.time()
    return int(seconds) + int(micros) / 1e6


def recorder(client: aioredis.Redis, pid: int, concurrency: int = 10) -> FleetRecorder:
    # A long flush interval: the test flushes by hand, so nothing races it.
    return FleetRecorder(
        client, api_key=TEST_API_KEY, concurrency=concurrency, host="host-a", pid=pid, flush_every_s=3600
    )


async def test_grants_of_two_workers_add_up_per_second_and_show_against_the_limit(
    redis_client: aioredis.Redis,
) -> None:
    first, second = recorder(redis_client, 1), recorder(redis_client, 2)
    await first.flush()  # learns Redis time
    await second.flush()
    # Stamp the grants well inside the settled part of the window: a past second, as a worker
    # whose flush was late would have counted them.
    past = int(await redis_now_s(redis_client)) - SETTLE_S - 3
    for _ in range(30):
        first._grants[("collect", past)] += 1
    for _ in range(20):
        second._grants[("collect", past)] += 1
    second._grants[("search", past)] += 4
    await first.flush()
    await second.flush()

    view = await read_fleet(redis_client, LIMITS)

    by_class = {c.endpoint_class: c for c in view.classes}
    collect = by_class["collect"]
    assert collect.limit_rps == 54.0
    assert collect.per_second[past - collect.series_start_s] == 50
    assert sum(collect.per_second) == 50
    assert collect.rps == pytest.approx(sum(collect.per_second[-10:]) / 10)
    assert collect.utilisation == pytest.approx(collect.rps / 54, abs=0.001)
    assert sum(by_class["search"].per_second) == 4
    assert sum(by_class["bulk"].per_second) == 0


async def test_waits_give_percentiles_and_429s_are_counted_per_minute(redis_client: aioredis.Redis) -> None:
    rec = recorder(redis_client, 1)
    await rec.flush()
    for wait_ms in range(1, 101):  # 1..100 ms
        rec.observe_grant("collect", wait_ms / 1000)
    for _ in range(3):
        rec.observe_response("collect", 429, None)
    rec.observe_response("collect", 200, 9_000)
    await rec.flush()

    view = await read_fleet(redis_client, LIMITS)

    collect = next(c for c in view.classes if c.endpoint_class == "collect")
    assert collect.wait_p50_s == pytest.approx(0.050)
    assert collect.wait_p95_s == pytest.approx(0.095)
    assert collect.r429_per_minute[-1] == 3 and sum(collect.r429_per_minute) == 3
    assert view.credits.remaining == 9_000


async def test_credit_samples_give_a_burn_rate_and_a_projected_exhaustion(
    redis_client: aioredis.Redis,
) -> None:
    now = await redis_now_s(redis_client)
    # Two samples 60 s apart, 600 credits spent: 36,000 per hour; 6,000 left lasts 600 s more.
    await redis_client.zadd(keys.FLEET_CREDIT_SAMPLES, {f"{now - 60:.3f}:6600:w": now - 60})
    await redis_client.zadd(keys.FLEET_CREDIT_SAMPLES, {f"{now:.3f}:6000:w": now})
    await redis_client.hset(keys.FLEET_CREDITS, mapping={"remaining": 6000, "at_s": f"{now:.3f}"})  # type: ignore[misc]

    view = await read_fleet(redis_client, LIMITS)

    assert view.credits.remaining == 6000
    assert view.credits.burn_per_h == pytest.approx(36_000, rel=0.01)
    assert view.credits.exhausted_at_s == pytest.approx(now + 600, abs=1)


async def test_workers_register_with_a_heartbeat_and_leave_when_stopped(redis_client: aioredis.Redis) -> None:
    busy, idle = recorder(redis_client, 11, concurrency=20), recorder(redis_client, 12, concurrency=5)
    release = asyncio.Event()

    async def job(ctx: dict[str, object], *args: object) -> str:
        await release.wait()
        return "done"

    tracked = track_in_flight(job)
    running = [asyncio.create_task(tracked({FLEET_RECORDER: busy})) for _ in range(3)]
    await asyncio.sleep(0)
    busy.start()
    idle.start()
    await busy.flush()  # the loop flushes at once too; this one is awaited, so the test need not poll
    await idle.flush()
    try:
        view = await read_fleet(redis_client, LIMITS)
        workers = {w.pid: w for w in view.workers}
        assert set(workers) == {11, 12}
        assert workers[11].concurrency == 20 and workers[11].in_flight == 3
        assert workers[12].concurrency == 5 and workers[12].in_flight == 0
        assert workers[11].host == "host-a"
    finally:
        release.set()
        assert await asyncio.gather(*running) == ["done"] * 3
        await idle.stop()
    await busy.flush()
    workers = {w.pid: w for w in (await read_fleet(redis_client, LIMITS)).workers}
    assert set(workers) == {11} and workers[11].in_flight == 0
    await busy.stop()
    assert (await read_fleet(redis_client, LIMITS)).workers == []


async def test_an_active_limiter_cool_down_is_published_for_readers_without_the_key(
    redis_client: aioredis.Redis,
) -> None:
    rec = recorder(redis_client, 1)
    now_us = int(await redis_now_s(redis_client) * 1e6)
    # What the limiter's penalize leaves behind: the cool-down end in µs of Redis time.
    await redis_client.set(keys.limiter_cooldown_key(TEST_API_KEY, "collect"), str(now_us + 30_000_000))
    await rec.flush()

    view = await read_fleet(redis_client, LIMITS)

    by_class = {c.endpoint_class: c for c in view.classes}
    assert 25 < by_class["collect"].cooldown_remaining_s <= 30
    assert by_class["search"].cooldown_remaining_s == 0


async def test_the_read_follows_the_redis_clock_whatever_the_readers_clock_says(
    redis_client: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which minutes to read is decided in the script from Redis `TIME`: a reader whose clock is an
    hour off (a host with a skewed clock) reads the figures of Redis's present, as the workers
    that wrote them did."""
    first = recorder(redis_client, 1)
    await first.flush()
    past = int(await redis_now_s(redis_client)) - SETTLE_S - 3
    first._grants[("collect", past)] += 7
    await first.flush()
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - 3600)

    view = await read_fleet(redis_client, LIMITS)

    collect = next(c for c in view.classes if c.endpoint_class == "collect")
    assert collect.per_second[past - collect.series_start_s] == 7
    assert abs(view.now_s - await redis_now_s(redis_client)) < 5


async def test_a_fleet_script_redis_lost_is_loaded_again_on_the_way(redis_client: aioredis.Redis) -> None:
    first = recorder(redis_client, 1)
    await first.flush()
    past = int(await redis_now_s(redis_client)) - SETTLE_S - 3
    first._grants[("search", past)] += 3
    await first.flush()
    await read_fleet(redis_client, LIMITS)
    await redis_client.script_flush()  # a Redis restart, or SCRIPT FLUSH

    view = await read_fleet(redis_client, LIMITS)

    search = next(c for c in view.classes if c.endpoint_class == "search")
    assert search.per_second[past - search.series_start_s] == 3
    assert [w.pid for w in view.workers] == [1]


async def test_other_modules_reads_ride_on_the_fleet_read_and_come_back_parsed(
    redis_client: aioredis.Redis,
) -> None:
    queue, credits = JobQueue(redis_client), CreditsGate(redis_client)
    await queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, [JobSpec("collect:id:1", ("r" * 32, "id:1"))])
    await redis_client.set(keys.CREDITS_EXHAUSTED, b"1")
    await redis_client.script_flush()  # the queue's script is lost: it is loaded on the way
    queue_args: list[str | int] = []

    def also(pipe: object) -> None:
        credits.queue_exhausted(pipe)
        queue_args.extend(queue.queue_figures(pipe, keys.JOB_QUEUE))

    _, (credits_reply, *queue_replies) = await read_fleet_with(redis_client, LIMITS, also)

    assert credits.exhausted_of(credits_reply) is True
    depth, age_s = await queue.figures_of(queue_replies, keys.JOB_QUEUE, queue_args)
    assert depth == 1
    assert age_s is not None and age_s >= 0
