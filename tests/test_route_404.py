"""Review #15, inverted: a 404 that is not the API's own answer tombstones nothing and loses nothing.

Review case N pointed the workers at the simulator root (no /cdapi) and every mirrored profile was
tombstoned. Settings now refuse such a URL outright; this drives the whole worker through a URL that
passes validation but still misses the API's routes, so every call is a route 404.
"""

from __future__ import annotations

import io

import pytest
from pydantic import ValidationError

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.deadletter import list_dead_letters
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from jobs.runs import get_status, utcnow
from simulator.app import start
from simulator.config import SimulatorConfig
from simulator.population import Population
from tests.conftest import TEST_API_KEY, with_overrides
from worker.runtime import Services


def test_a_base_url_without_cdapi_is_refused_at_start_up(settings: Settings) -> None:
    with pytest.raises(ValidationError, match=r"CORESIGNAL_BASE_URL must end in /cdapi"):
        with_overrides(settings, coresignal_base_url="http://127.0.0.1:8010")


@pytest.mark.slow
async def test_route_404s_leave_the_mirror_alive_and_the_items_in_the_dead_letter(settings: Settings) -> None:
    sim = await start(SimulatorConfig(population=50, api_keys=[TEST_API_KEY], collect_rps=400))
    try:
        wrong = with_overrides(
            settings, coresignal_base_url=f"http://{sim.host}:{sim.port}/api/cdapi", max_tries=2
        )
        services = await Services.open(wrong)
        try:
            ids = [Population.id_at(i) for i in range(5)]
            for i in ids:  # mirrored earlier, alive upstream
                await services.store.employees.upsert(i, {"id": i}, run_id="earlier", fetched_at=utcnow())
            text = "\n".join(map(str, ids)).encode()
            receipt = await enqueue_lines(services, read_lines(io.BytesIO(text)), "ids", source="t")
            await run_fleet_worker(wrong, burst=True)

            status = await get_status(services, receipt.run_id)
            assert status is not None and status.state == "finished"
            assert status.counts.get("not_found", 0) == 0 and status.counts.get("failed") == 5
            docs = [await services.store.employees.get(i) for i in ids]
            assert all(d is not None and d["sync"]["deleted_at"] is None for d in docs)  # no tombstone
            letters = await list_dead_letters(services, run_id=receipt.run_id, reason=None, limit=10)
            assert {d.error_type for d in letters} == {"UpstreamRouteError"}
            assert all("it must end in /cdapi" in d.reason for d in letters)  # requeue once fixed
        finally:
            await services.store.drop_database()
            await services.close()
    finally:
        await sim.close()
