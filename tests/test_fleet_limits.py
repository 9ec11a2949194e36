"""The fleet against the rate limit's hard cases (review #1 and #16): a long Retry-After must pause
the fleet, not dead-letter it; a Redis flush mid-run must not let the upstream see more than the
limit. Real worker processes, the simulator as a subprocess (the referee), real Redis, Mongo-wire."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from config import Settings
from devstack import processes as svc
from jobs.control import recover_run
from jobs.runs import RunState, get_status
from tests.conftest import enqueue_ids, population_ids
from tests.fleet_support import (
    sim_admin,
    sim_stats,
    simulator_process,
    start_worker,
    wait_for,
    worker_env,
)
from worker.runtime import Services

pytestmark = pytest.mark.slow


async def test_one_429_with_retry_after_60_pauses_the_fleet_and_dead_letters_nothing(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    with simulator_process(tmp_path, "--retry-after-s", "60", population=1200) as port:
        env = worker_env(settings, port)
        fleet = [start_worker(env, tmp_path / f"w{i}.log", concurrency=10) for i in range(2)]
        try:
            receipt = await enqueue_ids(services, population_ids(1000))
            await wait_for(services, receipt.run_id, processed=150, timeout_s=90)
            # A moment at 1 rps: the next requests get 429 with Retry-After: 60.
            sim_admin(port, "PATCH", "config", {"collect_rps": 1})
            await asyncio.sleep(1.0)
            sim_admin(port, "PATCH", "config", {"collect_rps": 54})
            await wait_for(services, receipt.run_id, timeout_s=300)
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            for proc in fleet:
                svc.stop(proc)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    assert status.done == 1000 and status.counts.get("failed", 0) == 0
    assert await services.store.dead_letters.count() == 0
    assert collect["rejected_429"] >= 1  # the 429 did happen
    # The fleet sat out the cool-down: the accepted requests span at least Retry-After.
    assert collect["last_accepted_s"] - collect["first_accepted_s"] >= 60


async def test_a_redis_flush_mid_run_never_lets_the_upstream_see_more_than_the_limit(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    with simulator_process(tmp_path, population=1200) as port:
        env = worker_env(settings, port)
        fleet = [start_worker(env, tmp_path / f"w{i}.log", concurrency=20) for i in range(3)]
        try:
            receipt = await enqueue_ids(services, population_ids(600))
            await wait_for(services, receipt.run_id, processed=120, timeout_s=90)
            await services.redis.flushdb()  # the queue, the counters and the limiter's state: gone
            await recover_run(services, receipt.run_id)  # what the operator (or the reconciler) does
            await wait_for(services, receipt.run_id, timeout_s=240)
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            for proc in fleet:
                svc.stop(proc)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED and status.done == 600
    assert collect["rejected_429"] == 0
    assert collect["max_in_any_second"] <= 54
