"""Shared helpers for the bulk-run tests: a simulator with quick data requests, and settings for it."""

from __future__ import annotations

import io
from typing import Any

import aiohttp

from config import Settings
from jobs.inputs import read_lines
from jobs.producers import Intake, Receipt, enqueue_lines
from simulator.app import RunningSimulator
from tests.conftest import MakeSimulator, with_overrides
from worker.runtime import Services

FILE_RECORDS = 250


async def bulk_simulator(make_simulator: MakeSimulator, population: int, **config: Any) -> RunningSimulator:
    fields: dict[str, Any] = {
        "population": population,
        "bulk_base_delay_s": 0.3,
        "bulk_per_record_s": 0.0,
        "bulk_file_records": FILE_RECORDS,
        **config,
    }
    return await make_simulator(**fields)


def bulk_settings(settings: Settings, simulator: RunningSimulator, **changes: Any) -> Settings:
    fields: dict[str, Any] = {
        "coresignal_base_url": simulator.base_url,
        "bulk_poll_first_s": 0.1,
        "bulk_poll_cap_s": 0.5,
        "bulk_ingest_batch": 100,
        "worker_concurrency": 8,
        # The Mongo-wire server writes ~100 profiles/s on a busy machine: a job long enough that a
        # file is never cut in two (cutting and resuming is what the SIGKILL test is about).
        "job_timeout_s": 60,
        **changes,
    }
    return with_overrides(settings, **fields)


async def enqueue_bulk_ids(services: Services, ids: list[int], *, skip_fresh: bool = False) -> Receipt:
    text = "\n".join(map(str, ids))
    return await enqueue_lines(
        services,
        read_lines(io.BytesIO(text.encode())),
        "ids",
        source="test",
        intake=Intake(bulk=True, skip_fresh=skip_fresh),
    )


async def sim_get(simulator: RunningSimulator, path: str) -> Any:
    url = f"http://{simulator.host}:{simulator.port}/_sim/{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def bulk_stats(simulator: RunningSimulator) -> dict[str, Any]:
    return dict((await sim_get(simulator, "stats"))["bulk"])
