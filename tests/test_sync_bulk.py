"""The planner behind a sync tick: a sweep at or over BULK_MIN_ITEMS becomes a bulk run (one data
request at the simulator, no collect request) still linked to its sync, a smaller one is
collected id by id, and names not resolved yet stay on collect. Scheduler ticks in process against
the simulator; real Redis and the Mongo-wire server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.scheduler import scheduler_tick
from jobs.sync_plan import plan_sweep
from jobs.syncs import SyncRequest, create_sync, get_sync
from simulator.app import RunningSimulator
from tests.bulk_support import bulk_settings, bulk_simulator, sim_get
from tests.conftest import MakeSimulator, population_ids, with_overrides, worker_context
from worker.run_model import RunKind, RunState
from worker.runtime import Services
from worker.sync_model import SyncSource

BULK_MIN_ITEMS = 20


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await bulk_simulator(make_simulator, 100)


@pytest.fixture
async def ctx(settings: Settings, simulator: RunningSimulator) -> AsyncIterator[dict[str, Any]]:
    tuned = with_overrides(
        bulk_settings(settings, simulator, bulk_min_items=BULK_MIN_ITEMS),
        collect_rps=300,
        search_rps=100,
        sync_scheduler=False,  # the test ticks by hand
    )
    async with worker_context(tuned) as context:
        yield context


def id_lines(ids: list[int]) -> list[tuple[int, str]]:
    return [(n, str(i)) for n, i in enumerate(ids, start=1)]


async def stats(simulator: RunningSimulator) -> dict[str, Any]:
    return dict(await sim_get(simulator, "stats"))


def test_the_planner_decides_the_path_and_names_stay_on_collect(settings: Settings) -> None:
    tuned = with_overrides(settings, bulk_min_items=BULK_MIN_ITEMS)
    ids = [f"id:{i}" for i in population_ids(BULK_MIN_ITEMS)]
    assert plan_sweep(tuned, ids) == "bulk"
    assert plan_sweep(tuned, ids[:-1]) == "collect"
    assert plan_sweep(tuned, [*ids, "name:ada-lovelace"]) == "collect"  # data requests take ids only


@pytest.mark.slow
async def test_a_sweep_over_the_threshold_is_one_bulk_data_request(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    members = population_ids(30)
    await create_sync(services, SyncRequest(name="big", source=SyncSource.IDS, lines=id_lines(members)))

    await scheduler_tick(ctx)  # type: ignore[arg-type]
    await run_fleet_worker(ctx["settings"], burst=True)

    sync = await get_sync(services, "big")
    assert sync.last_plan["sweep"] == 30 and sync.last_plan["via"] == "bulk"
    run = await services.store.runs.get(sync.current_run_id or "")
    assert run is not None and run.kind is RunKind.BULK and run.state is RunState.FINISHED
    assert run.sync is not None and run.sync.sync_name == "big" and run.sync.via == "bulk"
    after = await stats(simulator)
    assert after["classes"]["collect"]["accepted"] == 0
    requests = list(after["bulk"]["requests"].values())
    assert len(requests) == 1 and requests[0]["kind"] == "id_file" and requests[0]["records"] == 30
    assert await services.store.employees.synced_by_run(members, run.run_id) == set(members)

    # The next tick settles the bulk run like any sync run and finds nothing due.
    await services.store.syncs.make_due("big", sync.created_at)
    await scheduler_tick(ctx)  # type: ignore[arg-type]
    settled = await get_sync(services, "big")
    assert settled.current_run_id is None and settled.last_plan["sweep"] == 0


@pytest.mark.slow
async def test_a_sweep_under_the_threshold_is_collected_id_by_id(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    members = population_ids(BULK_MIN_ITEMS - 1)
    await create_sync(services, SyncRequest(name="small", source=SyncSource.IDS, lines=id_lines(members)))

    await scheduler_tick(ctx)  # type: ignore[arg-type]
    await run_fleet_worker(ctx["settings"], burst=True)

    sync = await get_sync(services, "small")
    assert sync.last_plan["via"] == "collect"
    run = await services.store.runs.get(sync.current_run_id or "")
    assert run is not None and run.kind is RunKind.SYNC and run.state is RunState.FINISHED
    after = await stats(simulator)
    assert after["classes"]["collect"]["accepted"] == len(members)
    assert after["bulk"]["requests"] == {}
