"""Redis high availability: the fleet on a Sentinel-managed Redis (real redis-server and sentinel
processes: one primary, one replica, three sentinels) survives the primary being SIGKILLed mid-run.

Set CHAOS_REPORT=/path/file.jsonl to collect the scenario's row for the reliability table."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from config import Settings
from jobs.runs import RunState, get_status
from tests.chaos.test_chaos_processes import mirror_check, stop_all
from tests.conftest import enqueue_ids, population_ids, with_overrides
from tests.fleet_support import (
    job_events,
    report_row,
    sentinel_binary,
    sentinel_redis,
    sim_stats,
    simulator_process,
    start_worker,
    wait_for,
    worker_env,
)
from worker.runtime import Services

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        sentinel_binary() is None,
        reason="needs redis-server (and redis-sentinel): apt-get install -y redis-server redis-sentinel",
    ),
]
REPORT = os.environ.get("CHAOS_REPORT")
COLLECT_LIMIT = 54  # the simulator's per-key collect limit
# Nine processes (three workers, the simulator, two redis-servers, three sentinels) share CI's two
# cores here, and a stalled simulator bunches arrivals the fleet spaced correctly: the default 3 %
# margin absorbs ~31 ms of that, which this machine exceeded once in a full CI run (one 429). This
# test is about the failover losing no limiter state, so it gives the fleet ~60 ms of headroom
# (6 %); the margin itself is measured in bench/peers.py and tests/test_fleet_limits.py.
FAILOVER_MARGIN = "0.06"


async def test_the_fleet_follows_a_promoted_replica_when_the_primary_dies(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    profiles = 600
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    with sentinel_redis(tmp_path) as redis_set, simulator_process(tmp_path) as port:
        ha = with_overrides(settings, redis_url=redis_set.url)
        env = worker_env(ha, port, RATE_SAFETY_MARGIN=FAILOVER_MARGIN)
        fleet = [start_worker(env, log) for log in logs]
        local = await Services.open(ha)
        try:
            receipt = await enqueue_ids(local, population_ids(profiles))
            await wait_for(local, receipt.run_id, processed=100, timeout_s=120)
            killed_at = datetime.now().astimezone()
            os.kill(redis_set.primary.pid, signal.SIGKILL)
            await _promoted(redis_set.master_port, redis_set.replica_port)
            promoted_s = (datetime.now().astimezone() - killed_at).total_seconds()
            await wait_for(local, receipt.run_id, timeout_s=240)
            assert all(proc.poll() is None for proc in fleet), "workers survive a failover"
            collect = sim_stats(port)["classes"]["collect"]
        finally:
            stop_all(fleet)
            await local.close()

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    lost, duplicated = await mirror_check(services, profiles)
    assert (lost, duplicated) == (0, 0)
    assert collect["rejected_429"] == 0, collect
    assert collect["max_in_any_second"] <= COLLECT_LIMIT, "no sliding second over the limit, failover or not"
    first_after = _first_job_started_after(killed_at, job_events(logs))
    assert first_after is not None, "jobs ran on the promoted replica"
    report_row(
        REPORT, scenario="Sentinel: primary SIGKILLed mid-run", profiles=profiles, lost=lost,
        duplicated=duplicated, recovery_s=round(first_after, 1), promoted_s=round(promoted_s, 1),
        max_in_any_second=collect["max_in_any_second"],
        upstream_per_profile=round(collect["accepted"] / profiles, 3),
    )  # fmt: skip


async def _promoted(master_port: Callable[[], int | None], replica_port: int) -> None:
    """Until the sentinels name the replica as the primary."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if await asyncio.to_thread(master_port) == replica_port:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the sentinels did not promote the replica within 60 s")


def _first_job_started_after(moment: datetime, events: list[dict[str, object]]) -> float | None:
    """Seconds from `moment` to the start of the first job that started after it (None: none did)."""
    starts = []
    for event in events:
        done_at = datetime.fromisoformat(str(event["timestamp"]).replace("Z", "+00:00"))
        started = done_at - timedelta(seconds=float(str(event.get("duration_s", 0))))
        if started > moment:
            starts.append((started - moment).total_seconds())
    return min(starts) if starts else None
