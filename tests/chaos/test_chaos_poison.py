"""A poison job: one whose worker dies every time it runs it. After MAX_WORKER_DEATHS deaths it is
dead-lettered with reason `worker died while running it` instead of killing worker after worker,
and a requeue puts it back to work. Real worker processes, the simulator, real Redis, Mongo-wire.

Set CHAOS_REPORT=/path/file.jsonl to collect the scenario's row for the reliability table."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from config import Settings
from jobs.deadletter import WORKER_DIED, requeue_dead_letters
from jobs.runs import RunState, get_status
from tests.conftest import enqueue_ids, population_ids
from tests.fleet_support import (
    report_row,
    sim_admin,
    sim_stats,
    simulator_process,
    start_worker,
    wait_for,
    worker_env,
)
from worker import keys
from worker.runtime import Services

pytestmark = pytest.mark.slow
REPORT = os.environ.get("CHAOS_REPORT")
DEATHS = 3


async def _started(redis: aioredis.Redis, job_id: str, starts: int) -> None:
    """Until the job has been started `starts` times without ending (its worker holds it now)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        count = await redis.get(keys.job_starts_key(job_id))
        if count is not None and int(count) >= starts and await redis.exists(f"arq:in-progress:{job_id}"):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{job_id} was not started {starts} times within 60 s")


async def test_a_job_that_kills_its_worker_again_and_again_is_dead_lettered(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    (employee_id,) = population_ids(1)
    job_id = keys.collect_job_id(f"id:{employee_id}")
    redis = aioredis.Redis.from_url(settings.redis_url)
    with simulator_process(tmp_path) as port:
        # Every answer takes a minute: the job is still running whenever its worker is killed.
        sim_admin(port, "PATCH", "config", {"slow_rate": 1.0, "slow_s": 60})
        env = worker_env(
            settings, port, MAX_WORKER_DEATHS=str(DEATHS), JOB_TIMEOUT_S="90", REQUEST_TIMEOUT_S="80"
        )
        try:
            receipt = await enqueue_ids(services, [employee_id])
            for death in range(DEATHS):
                worker = start_worker(env, tmp_path / f"victim-{death}.log")
                try:
                    await _started(redis, job_id, death + 1)
                finally:
                    os.kill(worker.pid, signal.SIGKILL)
                    worker.wait(timeout=10)
            sim_admin(port, "PATCH", "config", {"slow_rate": 0.0})
            worker = start_worker(env, tmp_path / "last.log")
            try:
                await wait_for(services, receipt.run_id, timeout_s=60)
                letters = await services.store.dead_letters.list(receipt.run_id, 10)
                dead = await get_status(services, receipt.run_id)
                assert await requeue_dead_letters(services, run_id=receipt.run_id, reason=WORKER_DIED) == 1
                await wait_for(services, receipt.run_id, timeout_s=60)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            await redis.aclose()

    assert [(d.item_key, d.reason) for d in letters] == [(f"id:{employee_id}", WORKER_DIED)]
    assert dead is not None and dead.state == RunState.FINISHED and dead.counts.get("failed") == 1
    again = await get_status(services, receipt.run_id)
    assert again is not None and again.state == RunState.FINISHED
    assert again.done == 1 and again.counts.get("failed", 0) == 0, again.as_dict()
    assert await services.store.employees.count() == 1
    assert await services.store.dead_letters.count() == 0
    report_row(
        REPORT, scenario=f"poison job: worker SIGKILLed {DEATHS} times on it", profiles=1, lost=0,
        duplicated=await services.store.employees.count() - 1, recovery_s=None,
        upstream_per_profile=collect["accepted"],
    )  # fmt: skip
