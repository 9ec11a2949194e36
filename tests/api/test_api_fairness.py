"""Fairness through the API: a small run posted during a large one is not starved."""

from __future__ import annotations

import asyncio

import pytest
from api_support import Api, MakeApi

from cli.wiring import run_fleet_worker
from config import Settings
from simulator.app import start
from simulator.config import SimulatorConfig
from simulator.population import Population
from tests.conftest import TEST_API_KEY, with_overrides
from worker.runtime import Services


@pytest.mark.slow
async def test_a_small_run_posted_during_a_large_one_finishes_first(
    make_api: MakeApi, settings: Settings, services: Services
) -> None:
    simulator = await start(SimulatorConfig(population=1000, api_keys=[TEST_API_KEY], collect_rps=400))
    fleet = with_overrides(
        settings,
        coresignal_base_url=simulator.base_url,
        queue_window=30,
        collect_rps=60,
        worker_concurrency=10,
    )
    windowed = await Services.open(fleet)
    api: Api = await make_api(settings=fleet, services=windowed)
    try:
        large = await api.post("/v1/runs", {"employee_ids": [Population.id_at(i) for i in range(300)]})
        small = await api.post("/v1/runs", {"employee_ids": [Population.id_at(i) for i in range(500, 515)]})
        assert (large.status, small.status) == (202, 202)
        worker = asyncio.create_task(run_fleet_worker(fleet, burst=True))
        try:
            while (await api.get(f"/v1/runs/{small.body['run_id']}")).body["state"] != "finished":
                await asyncio.sleep(0.05)
            big = (await api.get(f"/v1/runs/{large.body['run_id']}")).body
            assert big["state"] == "running"
            assert big["done"] < 300 / 2  # the small run got half of every refill of the queue
            assert big["eta_s"] is not None and big["eta_s"] > 0
        finally:
            await worker
        done = (await api.get(f"/v1/runs/{large.body['run_id']}")).body
        assert (done["state"], done["done"]) == ("finished", 300)
    finally:
        await windowed.close()
        await simulator.close()
