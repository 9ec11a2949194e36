"""Bulk runs with real worker processes: SIGKILL mid-file resumes at the checkpoint, and the bulk
rate class holds fleet-wide. The simulator runs as a subprocess; real Redis and the Mongo-wire server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from config import Settings
from devstack import processes as svc
from jobs.runs import RunState, get_status
from tests.bulk_support import enqueue_bulk_ids
from tests.conftest import population_ids
from tests.fleet_support import sim_admin, sim_stats, simulator_process, start_worker, wait_for, worker_env
from worker.runtime import Services

pytestmark = pytest.mark.slow

FILE_RECORDS = 300


async def _wait_mid_file(services: Services, run_id: str, timeout_s: float) -> None:
    """Until the run's data request has ingested part of its first file (and no file is done)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rows = await services.store.ledger.of_run(run_id)
        if rows and rows[0].file_records.get(0, 0) > 0 and not rows[0].files_done:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never caught the first file half-ingested: {rows}")


async def test_a_worker_killed_mid_file_resumes_at_the_checkpoint_and_posts_once(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    with simulator_process(tmp_path, population=600) as port:
        # Slow files (each 100-record batch waits 0.4 s): the worker is caught mid-file.
        sim_admin(port, "PATCH", "config", {
            "bulk_file_records": FILE_RECORDS, "bulk_base_delay_s": 0.2, "bulk_per_record_s": 0,
            "bulk_slow_rate": 1.0, "bulk_slow_chunk_s": 0.4,
        })  # fmt: skip
        env = worker_env(
            settings, port, JOB_TIMEOUT_S="18", BULK_POLL_FIRST_S="0.2", BULK_POLL_CAP_S="1",
            BULK_INGEST_BATCH="20",
        )  # fmt: skip
        receipt = await enqueue_bulk_ids(services, population_ids(600))
        victim = start_worker(env, tmp_path / "victim.log", concurrency=4)
        try:
            await _wait_mid_file(services, receipt.run_id, timeout_s=60)
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            [row] = await services.store.ledger.of_run(receipt.run_id)
            checkpoint = row.file_records[0]
            replacement = start_worker(env, tmp_path / "replacement.log", concurrency=4)
            try:
                await wait_for(services, receipt.run_id, timeout_s=180)
            finally:
                svc.stop(replacement)
        finally:
            with contextlib.suppress(Exception):
                svc.stop(victim)
        stats = sim_stats(port)["bulk"]

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state is RunState.FINISHED, status
    data = status.as_dict()
    # Each profile counted once: the run's processed items are exactly its accepted ones.
    assert data["done"] == 600 and status.processed == 600 and data["failed"] == 0, data
    assert await services.store.employees.mirrored_ids() == set(population_ids(600))
    assert list(stats["posts_by_fingerprint"].values()) == [1]  # the POST was never repeated
    [row] = await services.store.ledger.of_run(receipt.run_id)
    # Resumed at the checkpoint: every record written once by a checkpointed batch, and the
    # kill left file 0 downloaded twice (before and after), file 1 once.
    assert 0 < checkpoint < FILE_RECORDS
    assert row.records_ingested == 600
    assert sorted(row.file_downloads.values()) == [1, 2]
    assert sorted(stats["downloads_by_file"].values()) == [1, 2]


async def test_the_bulk_class_is_never_over_27_in_any_second(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    with simulator_process(tmp_path, population=200) as port:
        # Tiny files: 200 records in 5-record files make 40 downloads per request, plus polls.
        sim_admin(port, "PATCH", "config", {
            "bulk_file_records": 5, "bulk_base_delay_s": 0.5, "bulk_per_record_s": 0,
        })  # fmt: skip
        env = worker_env(settings, port, BULK_POLL_FIRST_S="0.05", BULK_POLL_CAP_S="0.1")
        runs = [await enqueue_bulk_ids(services, population_ids(50, first=50 * i)) for i in range(4)]
        workers = [start_worker(env, tmp_path / f"w{i}.log", concurrency=10) for i in range(3)]
        try:
            for receipt in runs:
                await wait_for(services, receipt.run_id, timeout_s=180)
        finally:
            for worker in workers:
                svc.stop(worker)
        bulk = sim_stats(port)["classes"]["bulk"]
    assert bulk["rejected_429"] == 0
    assert bulk["max_in_any_second"] <= 27
    assert bulk["accepted"] > 4 * 10  # submits, polls and 40 downloads: the class was busy
    for receipt in runs:
        status = await get_status(services, receipt.run_id)
        assert status is not None and status.state is RunState.FINISHED and status.done == 50
