"""Each collect leaves a line in the profile's sync history (the dashboard's profile page), changed or
not, and a profile that goes away upstream leaves a `not_found`. In process: producer → queue → burst
worker → simulator → MongoDB, nothing mocked."""

from __future__ import annotations

import aiohttp
import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import MakeSimulator, enqueue_ids, with_overrides
from worker.runtime import Services


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=50)


@pytest.fixture
def sim_settings(settings: Settings, simulator: RunningSimulator) -> Settings:
    return with_overrides(settings, coresignal_base_url=simulator.base_url, collect_rps=300)


async def change(sim: RunningSimulator, employee_id: int, action: str) -> None:
    url = f"http://{sim.host}:{sim.port}/_sim/profiles/{employee_id}/{action}"
    async with aiohttp.ClientSession() as session, session.post(url) as resp:
        assert resp.status == 200, await resp.text()


@pytest.mark.slow
async def test_every_collect_is_in_the_history_changed_or_not_with_its_run(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    kept, changed, gone = (Population.id_at(i) for i in range(3))
    runs = []
    for step in range(3):
        if step == 1:
            await change(simulator, changed, "mutate")
        if step == 2:
            await change(simulator, gone, "remove")
        runs.append((await enqueue_ids(services, [kept, changed, gone])).run_id)
        await run_fleet_worker(sim_settings, burst=True)

    history = services.store.history
    events, total = await history.of(kept)
    assert total == 3
    assert [e["outcome"] for e in events] == ["unchanged", "unchanged", "inserted"]  # newest first
    assert [e["run_id"] for e in events] == runs[::-1]
    assert {e["by"] for e in events} == {"id"}
    events, _ = await history.of(changed)
    assert [e["outcome"] for e in events] == ["unchanged", "changed", "inserted"]
    events, _ = await history.of(gone)
    assert [e["outcome"] for e in events] == ["not_found", "unchanged", "inserted"]
