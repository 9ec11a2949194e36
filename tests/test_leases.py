"""Job leases: a running job's in-progress marker lives a few seconds and its worker keeps renewing it,
so a dead worker's jobs are free again within seconds while a live slow job is never taken over.

In-process arq workers on real Redis (the multi-process SIGKILL scenario is in tests/chaos)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from config.redis_target import RedisTarget
from worker.queue import JobQueue, JobSpec, WorkerOptions, run_worker

QUEUE = "es-test:queue"
LEASE_S = 0.6
IN_PROGRESS = "arq:in-progress:"  # arq's marker of a started job: what the lease is


@pytest.fixture
async def client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    redis = aioredis.Redis.from_url(clean_redis)
    try:
        yield redis
    finally:
        await redis.aclose()


async def _nothing(ctx: dict[str, Any]) -> None:
    pass


def _options(redis_url: str) -> WorkerOptions:
    return WorkerOptions(
        redis=RedisTarget(redis_url), queue_name=QUEUE, concurrency=2, job_timeout_s=20, max_tries=1,
        drain_timeout_s=0, lease_s=LEASE_S, poll_delay_s=0.05, burst=True,
    )  # fmt: skip


async def _burst(redis_url: str, functions: dict[str, Any], workers: int) -> None:
    """`workers` burst workers on one queue until it is empty (bounded: a hang fails the test)."""
    fleet = [
        run_worker(_options(redis_url), functions, ctx={}, on_startup=_nothing, on_shutdown=_nothing)
        for _ in range(workers)
    ]
    await asyncio.wait_for(asyncio.gather(*fleet), timeout=60)


@pytest.mark.slow
async def test_a_job_slower_than_its_lease_runs_once_and_keeps_a_short_lease(
    clean_redis: str, client: aioredis.Redis
) -> None:
    starts: list[str] = []
    ttls_ms: list[int] = []

    async def slow(ctx: dict[str, Any], owner: str) -> str:
        starts.append(owner)
        for _ in range(4):  # four leases long: without renewal the second worker would take it over
            await asyncio.sleep(LEASE_S)
            ttls_ms.append(int(await client.pttl(IN_PROGRESS + "slow:1")))
        return "done"

    await JobQueue(client).enqueue_many(QUEUE, "slow", [JobSpec("slow:1", ("a",))])
    await _burst(clean_redis, {"slow": slow}, workers=2)

    assert starts == ["a"], "a live job is never run a second time"
    # The marker stayed alive all along, and never longer than one lease (not arq's timeout + 10 s).
    assert len(ttls_ms) == 4 and all(0 < ttl <= LEASE_S * 1000 for ttl in ttls_ms), ttls_ms
    assert await client.exists(IN_PROGRESS + "slow:1") == 0  # released when the job ended


@pytest.mark.slow
async def test_a_job_whose_worker_died_is_taken_over_once_its_lease_lapses(
    clean_redis: str, client: aioredis.Redis
) -> None:
    # A worker started the job and died: its marker holds a token nobody renews.
    await JobQueue(client).enqueue_many(QUEUE, "quick", [JobSpec("quick:1", ("b",))])
    await client.set(IN_PROGRESS + "quick:1", "dead-worker", px=int(LEASE_S * 1000))
    ran: list[str] = []

    async def quick(ctx: dict[str, Any], owner: str) -> str:
        ran.append(owner)
        return "done"

    await _burst(clean_redis, {"quick": quick}, workers=1)
    assert ran == ["b"]
    assert await client.zcard(QUEUE) == 0


@pytest.mark.slow
async def test_a_poll_skips_jobs_another_worker_holds_and_runs_the_ones_behind_them(
    clean_redis: str, client: aioredis.Redis
) -> None:
    # The head of the queue is taken (another worker's leases); the worker must neither run those
    # nor stall behind them: it runs the free jobs behind, and the held ones once their lease ends.
    ran: list[str] = []

    async def quick(ctx: dict[str, Any], name: str) -> str:
        ran.append(name)
        return "ok"

    held = [JobSpec(f"quick:held-{n}", (f"held-{n}",)) for n in range(5)]
    free = [JobSpec(f"quick:free-{n}", (f"free-{n}",)) for n in range(3)]
    queue = JobQueue(client)
    await queue.enqueue_many(QUEUE, "quick", held)
    await queue.enqueue_many(QUEUE, "quick", free)
    for spec in held:
        await client.set(IN_PROGRESS + spec.job_id, b"1", px=1_500)
    worker = asyncio.create_task(_burst(clean_redis, {"quick": quick}, workers=1))
    deadline = asyncio.get_running_loop().time() + 1.0
    while len(ran) < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert sorted(ran) == ["free-0", "free-1", "free-2"]  # the held ones did not run meanwhile
    await worker
    assert sorted(ran) == sorted([f"free-{n}" for n in range(3)] + [f"held-{n}" for n in range(5)])
