"""Reliability under process and service failures: real worker processes, the simulator, real Redis
and the Mongo-wire server. Each test fails if a profile is lost or duplicated.

Set CHAOS_REPORT=/path/file.jsonl to collect one result row per scenario (the reliability table)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from config import Settings
from devstack import processes as svc
from jobs.runs import RunState, get_status
from simulator.population import Population
from tests.conftest import enqueue_ids, population_ids, with_overrides
from tests.fleet_support import (
    job_events,
    own_redis,
    report_row,
    sim_stats,
    simulator_process,
    start_worker,
    tcp_proxy,
    wait_for,
    worker_env,
)
from worker.runtime import Services

pytestmark = pytest.mark.slow
REPORT = os.environ.get("CHAOS_REPORT")


async def mirror_check(services: Services, count: int) -> tuple[int, int]:
    """(lost, duplicated) for ids 0..count-1: lost = neither mirrored nor dead-lettered."""
    expected = {Population.id_at(i) for i in range(count)}
    mirrored = await services.store.employees.mirrored_ids()
    letters = await services.store.dead_letters.list(limit=count + 1)
    dead = {int(d.item_key.split(":")[1]) for d in letters}
    documents = await services.store.employees.count()
    return len(expected - mirrored - dead), documents - len(mirrored)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        svc.stop(proc)


async def test_sigkill_half_the_workers_three_times(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    """Every job a killed worker was running is started again within 5 s of the kill (the lease is
    3 s; the default JOB_TIMEOUT_S of 18 s would mean 28 s without leases)."""
    rng = random.Random(20261129)
    profiles = 1500
    fleet: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    kills: list[tuple[datetime, dict[str, int]]] = []
    redis = aioredis.Redis.from_url(settings.redis_url)
    with simulator_process(tmp_path) as port:
        env = worker_env(settings, port)

        def launch() -> None:
            logs.append(tmp_path / f"worker-{len(logs)}.log")
            fleet.append(start_worker(env, logs[-1], concurrency=15))

        try:
            for _ in range(4):
                launch()
            receipt = await enqueue_ids(services, population_ids(profiles))
            for _ in range(3):
                await asyncio.sleep(rng.uniform(3.0, 8.0))
                # Survivors must be up to take the orphans over (a start takes seconds on a busy CI box).
                await _all_working(fleet, logs)
                victims = rng.sample([p for p in fleet if p.poll() is None], 2)
                killed_at = datetime.now().astimezone()
                for victim in victims:
                    os.kill(victim.pid, signal.SIGKILL)
                # Right after the kill: what was running (the victims' markers outlive them by a lease).
                kills.append((killed_at, await _running_tries(redis)))
                for victim in victims:
                    victim.wait(timeout=10)
                launch()
                launch()
            await wait_for(services, receipt.run_id, timeout_s=300)
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            stop_all(fleet)
            await redis.aclose()

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    lost, duplicated = await mirror_check(services, profiles)
    assert (lost, duplicated) == (0, 0)
    ends = [event for name in _ENDED for event in job_events(logs, name)]
    orphans, recovery_s = _recovery_times(kills, ends)
    assert orphans > 0 and len(recovery_s) == orphans, "every orphaned job was run again"
    assert max(recovery_s) <= 5.0, sorted(recovery_s)[-5:]
    report_row(
        REPORT, scenario="SIGKILL 2 of 4 workers, 3 times", profiles=profiles, lost=lost,
        duplicated=duplicated, recovery_s=round(max(recovery_s), 1), orphans=orphans,
        upstream_per_profile=round(collect["accepted"] / profiles, 3),
    )  # fmt: skip


async def _all_working(fleet: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Wait until every live worker has finished a job (each is up and taking jobs)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        live = [log for proc, log in zip(fleet, logs, strict=True) if proc.poll() is None]
        if all(job_events([log]) for log in live):
            return
        await asyncio.sleep(0.2)
    raise AssertionError("workers did not start taking jobs within 60 s")


async def _running_tries(redis: aioredis.Redis) -> dict[str, int]:
    """Job id -> its current try (arq's counter) for every job holding an in-progress marker."""
    running = [k.decode().removeprefix("arq:in-progress:") for k in await redis.keys("arq:in-progress:*")]
    tries = await redis.mget([f"arq:retry:{job_id}" for job_id in running]) if running else []
    return {job_id: int(t or 1) for job_id, t in zip(running, tries, strict=True)}


_ENDED = ("job.done", "job.retry", "job.overran")


def _recovery_times(
    kills: list[tuple[datetime, dict[str, int]]], events: list[dict[str, object]]
) -> tuple[int, list[float]]:
    """(orphans, kill → start of each orphan's next try). An orphan is a collect or search job running
    at a kill whose try never ended (a survivor's job logs its end at that try); its next try is the
    re-run."""
    starts: dict[tuple[str, int], datetime] = {}
    ended: set[tuple[str, int]] = set()
    for event in events:
        if "job_try" not in event:
            continue
        key = (str(event["job_id"]), int(str(event["job_try"])))
        ended.add(key)
        done_at = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
        starts[key] = done_at - timedelta(seconds=float(str(event.get("duration_s", 0))))
    orphans, times = 0, []
    for killed_at, running in kills:
        for job_id, job_try in running.items():
            # A periodic job (feeder, reconciler) is not run again: arq drops a cron job's second
            # try, and the next tick does its work anyway.
            if (job_id, job_try) in ended or not job_id.startswith(("collect:", "search:")):
                continue
            orphans += 1
            later = [at for (j, t), at in starts.items() if j == job_id and t > job_try]
            if later:
                times.append((min(later) - killed_at).total_seconds())
    return orphans, times


async def test_sigterm_to_every_worker_drains_and_a_new_fleet_finishes(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    profiles = 300
    with simulator_process(tmp_path) as port:
        env = worker_env(settings, port)
        logs = [tmp_path / f"w{i}.log" for i in range(3)]
        fleet = [start_worker(env, log) for log in logs]
        try:
            receipt = await enqueue_ids(services, population_ids(profiles))
            await wait_for(services, receipt.run_id, processed=60, timeout_s=60)
            # A worker still importing when SIGTERM comes dies of it (-15) before arq can drain.
            await _all_working(fleet, logs)
            started = time.monotonic()
            for proc in fleet:
                proc.send_signal(signal.SIGTERM)
            assert [proc.wait(timeout=45) for proc in fleet] == [0, 0, 0]
            drain_s = time.monotonic() - started
            redis = aioredis.Redis.from_url(settings.redis_url)
            assert await redis.keys("arq:in-progress:*") == []  # nothing cut off mid-flight
            await redis.aclose()
            fleet += [start_worker(env, tmp_path / f"again{i}.log") for i in range(2)]
            await wait_for(services, receipt.run_id, timeout_s=120)
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            stop_all(fleet)

    lost, duplicated = await mirror_check(services, profiles)
    assert (lost, duplicated) == (0, 0)
    assert collect["accepted"] == profiles  # no job was cut off and collected again
    report_row(
        REPORT, scenario="SIGTERM all 3 workers, restart 2", profiles=profiles, lost=lost,
        duplicated=duplicated, recovery_s=round(drain_s, 1),
        upstream_per_profile=round(collect["accepted"] / profiles, 3),
    )  # fmt: skip


async def test_redis_restarts_empty_mid_run_and_the_run_heals_itself(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    """No one types `resume`: the reconciler notices the run Redis lost and re-feeds it from MongoDB."""
    profiles = 300
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    with own_redis(tmp_path) as (redis_port, restart), simulator_process(tmp_path) as port:
        own = with_overrides(settings, redis_url=f"redis://127.0.0.1:{redis_port}/0")
        env = worker_env(own, port)
        fleet = [start_worker(env, log) for log in logs]
        local = await Services.open(own)
        try:
            receipt = await enqueue_ids(local, population_ids(profiles))
            await wait_for(local, receipt.run_id, processed=60, timeout_s=60)
            await restart(3.0)  # everything in Redis is gone: queue, counters, limiter, locks
            back = datetime.now().astimezone()
            await wait_for(local, receipt.run_id, timeout_s=180)
            finish_s = (datetime.now().astimezone() - back).total_seconds()
            assert all(proc.poll() is None for proc in fleet), "workers must survive a Redis restart"
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            stop_all(fleet)
            await local.close()

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    lost, duplicated = await mirror_check(services, profiles)
    assert (lost, duplicated) == (0, 0)
    healed = [e for e in job_events(logs, "run.reconciled") if e.get("run_id") == receipt.run_id]
    assert healed, "the reconciler re-fed the run"
    healed_s = min(_at(e) for e in healed) - back.timestamp()
    reconnects = job_events(logs, "worker.redis_unavailable")
    assert len(reconnects) <= 12, "a worker reconnects with backoff, not in a tight loop"
    report_row(
        REPORT, scenario="Redis restarted empty mid-run, no command", profiles=profiles, lost=lost,
        duplicated=duplicated, recovery_s=round(healed_s, 1), finish_s=round(finish_s, 1),
        upstream_per_profile=round(collect["accepted"] / profiles, 3),
    )  # fmt: skip


def _at(event: dict[str, object]) -> float:
    return datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00")).timestamp()


async def test_mongodb_unreachable_for_30_seconds(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    profiles = 200
    mongo_port = int(settings.mongodb_url.rsplit(":", 1)[1])
    async with tcp_proxy(mongo_port) as proxy:
        via_proxy = with_overrides(settings, mongodb_url=f"mongodb://127.0.0.1:{proxy.port}")
        with simulator_process(tmp_path) as port:
            fleet = [start_worker(worker_env(via_proxy, port), tmp_path / f"w{i}.log") for i in range(2)]
            try:
                receipt = await enqueue_ids(services, population_ids(profiles))
                await wait_for(services, receipt.run_id, processed=40, timeout_s=60)
                proxy.cut = True
                proxy.disconnect_all()
                await asyncio.sleep(30)
                proxy.cut = False
                back = time.monotonic()
                await wait_for(services, receipt.run_id, timeout_s=180)
                recovery_s = time.monotonic() - back
                collect = sim_stats(port)["classes"]["collect"]
            finally:
                stop_all(fleet)

    lost, duplicated = await mirror_check(services, profiles)
    assert (lost, duplicated) == (0, 0)
    assert await services.store.dead_letters.count() == 0  # an outage of ours is never the item's fault
    # Profiles collected during the outage were kept for their retry: no credit spent twice.
    assert collect["accepted"] <= profiles + 5
    retries = job_events([tmp_path / "w0.log", tmp_path / "w1.log"], "job.retry")
    assert len(retries) < profiles * 5, "retries back off; no busy loop"
    report_row(
        REPORT, scenario="MongoDB unreachable for 30 s", profiles=profiles, lost=lost, duplicated=duplicated,
        recovery_s=round(recovery_s, 1), upstream_per_profile=round(collect["accepted"] / profiles, 3),
    )  # fmt: skip
