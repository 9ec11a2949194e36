"""Bulk runs end to end, in process: producer → ledger → data-request job → simulator → mirror.

Real Redis, the Mongo-wire server and the simulator on a socket (quick data requests, small
files); a burst worker runs the jobs until the queue is empty.
"""

from __future__ import annotations

import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.runs import RunState, get_status
from tests.bulk_support import FILE_RECORDS, bulk_settings, bulk_simulator, bulk_stats, enqueue_bulk_ids
from tests.conftest import MakeSimulator, population_ids
from worker.runtime import Services


@pytest.mark.slow
async def test_a_bulk_run_of_a_few_thousand_ids_lands_every_profile_exactly_once(
    settings: Settings, services: Services, make_simulator: MakeSimulator
) -> None:
    # The Mongo-wire server slows down as a collection grows: 1,000 of the 3,000 ids exist.
    simulator = await bulk_simulator(make_simulator, population=1_000)
    requested = population_ids(3_000)
    wanted = requested[:1_000]
    receipt = await enqueue_bulk_ids(services, requested)
    assert receipt.accepted == 3_000

    await run_fleet_worker(bulk_settings(settings, simulator), burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None
    data = status.as_dict()
    assert status.state is RunState.FINISHED, data
    assert data["inserted"] == data["done"] == 1_000, data
    assert (data["not_found"], data["failed"], data["queued"]) == (2_000, 0, 0)
    assert data["via"] == "bulk" and data["data_requests"] == {"done": 1}
    assert data["records_ingested"] >= 1_000
    assert await services.store.employees.mirrored_ids() == set(wanted)
    stats = await bulk_stats(simulator)
    assert list(stats["posts_by_fingerprint"].values()) == [1]
    assert len(stats["downloads_by_file"]) == 1_000 // FILE_RECORDS
    assert set(stats["downloads_by_file"].values()) == {1}  # each file downloaded once
    assert data["changed"] == 0 and not await services.store.employees.changes_of()
