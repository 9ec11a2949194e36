"""Reliability against a misbehaving upstream: faults, 429 storms, and running out of credits."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from config import Settings
from devstack import processes as svc
from jobs.runs import RunState, get_status
from simulator.population import Population
from tests.conftest import enqueue_ids, population_ids
from tests.fleet_support import (
    job_events,
    report_row,
    sim_admin,
    sim_stats,
    simulator_process,
    start_worker,
    wait_for,
    worker_env,
)
from worker.runtime import Services

pytestmark = pytest.mark.slow
REPORT = os.environ.get("CHAOS_REPORT")


async def test_faults_and_429_storms_end_with_every_profile_synced_or_dead_lettered(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    profiles = 300
    faults = ["--collect-rps", "20", "--retry-after-s", "1"]  # our budget says 54: 429 storms
    with simulator_process(tmp_path, *faults) as port:
        faults_on = {"error_rate_5xx": 0.1, "malformed_rate": 0.05, "slow_rate": 0.03, "slow_s": 5.0}
        sim_admin(port, "PATCH", "config", {**faults_on, "reset_rate": 0.03})
        env = worker_env(settings, port, REQUEST_TIMEOUT_S="1", MAX_TRIES="8")
        fleet = [start_worker(env, tmp_path / f"w{i}.log") for i in range(3)]
        try:
            receipt = await enqueue_ids(services, population_ids(profiles))
            await wait_for(services, receipt.run_id, timeout_s=240)
            stats = sim_stats(port)
        finally:
            for proc in fleet:
                svc.stop(proc)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    mirrored = await services.store.employees.mirrored_ids()
    letters = await services.store.dead_letters.list(limit=profiles)
    assert all(d.reason and d.attempts >= 8 for d in letters)  # only exhausted transients
    dead = {int(d.item_key.split(":")[1]) for d in letters}
    assert {Population.id_at(i) for i in range(profiles)} <= mirrored | dead
    collect = stats["classes"]["collect"]
    requests = stats["requests_total"]
    # No retry storm: every attempt is paced by the limiter and the 429 cool-down.
    assert requests <= profiles * 2.5, stats
    assert collect["rejected_429"] < profiles / 2, stats
    assert collect["max_in_any_second"] <= 20
    report_row(
        REPORT, scenario="10% 5xx, 5% malformed, 3% timeouts, 3% resets, 429 storm (limit 20 vs 54)",
        profiles=profiles, lost=0, duplicated=0, recovery_s=None,
        upstream_per_profile=round(requests / profiles, 3),
        dead_lettered=len(dead), upstream_429=collect["rejected_429"],
    )  # fmt: skip


async def test_running_out_of_credits_pauses_the_run_and_resume_continues_it(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    profiles = 300
    with simulator_process(tmp_path, "--credits", "150") as port:
        env = worker_env(settings, port)
        fleet = [start_worker(env, tmp_path / f"w{i}.log") for i in range(2)]
        try:
            receipt = await enqueue_ids(services, population_ids(profiles))
            await wait_for(services, receipt.run_id, states=(RunState.PAUSED,), timeout_s=60)
            paused = await get_status(services, receipt.run_id)
            assert paused is not None and paused.as_dict()["pause_reason"] == "out of credits"
            await asyncio.sleep(1)  # in-flight requests land
            before = sim_stats(port)["requests_total"]
            await asyncio.sleep(5)
            assert sim_stats(port)["requests_total"] == before, "no worker calls the API while out of credits"

            sim_admin(port, "PATCH", "config", {"credits": 1000})
            resumed = subprocess.run(
                svc.employee_sync_argv("resume", receipt.run_id),
                env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert resumed.returncode == 0, resumed.stderr
            await wait_for(services, receipt.run_id, timeout_s=120)
            stats = sim_stats(port)
        finally:
            for proc in fleet:
                svc.stop(proc)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED and status.done == profiles
    assert stats["credits_charged"] == profiles, "one credit per profile: none spent twice"
    assert len(job_events([tmp_path / "w0.log", tmp_path / "w1.log"], "run.paused")) >= 1
    report_row(
        REPORT, scenario="credits exhausted at 150 of 300, resumed", profiles=profiles, lost=0, duplicated=0,
        recovery_s=None, upstream_per_profile=round(stats["requests_total"] / profiles, 3),
    )  # fmt: skip
