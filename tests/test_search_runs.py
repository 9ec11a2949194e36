"""Search runs end to end, in process: ES-DSL query → pages of ids → collect jobs → the mirror."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import math

import aiohttp
import pytest
import redis.asyncio as aioredis

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.control import recover_run
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from jobs.runs import RunState, get_status
from jobs.search import start_search_run
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import MakeSimulator, with_overrides
from worker.runtime import Services

POPULATION = 600
GERMANY = {"query": {"term": {"location_country": "Germany"}}, "sort": ["id"]}


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=POPULATION, search_rps=50)


@pytest.fixture
def sim_settings(settings: Settings, simulator: RunningSimulator) -> Settings:
    return with_overrides(
        settings,
        coresignal_base_url=simulator.base_url,
        collect_rps=300,
        search_rps=40,
        search_items_per_page=20,
        worker_concurrency=20,
    )


def matching_ids(simulator: RunningSimulator, country: str = "Germany") -> list[int]:
    population = Population(seed=simulator.state.config.seed, size=POPULATION)
    return [
        i for i in population.iter_ids() if (population.profile(i) or {}).get("location_country") == country
    ]


async def sim_stats(sim: RunningSimulator) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://{sim.host}:{sim.port}/_sim/stats") as resp,
    ):
        return dict(await resp.json())


@pytest.mark.slow
async def test_a_search_run_collects_every_matching_profile_once(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    expected = matching_ids(simulator)
    assert len(expected) > 40  # several pages of 20

    run_id = await start_search_run(services, GERMANY, max_profiles=None, source="test")
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, run_id)
    assert status is not None
    data = status.as_dict()
    pages = math.ceil(len(expected) / 20)
    assert data["state"] == RunState.FINISHED
    assert (data["pages_fetched"], data["total_results"], data["ids_seen"]) == (
        pages,
        len(expected),
        len(expected),
    )
    assert (data["enqueued"], data["inserted"], data["queued"], data["failed"]) == (
        len(expected),
        len(expected),
        0,
        0,
    )
    assert data["query"] == GERMANY
    mirrored = sorted(await services.store.employees.mirrored_ids())
    assert sorted(mirrored) == expected
    stats = await sim_stats(simulator)
    assert stats["classes"]["search"]["accepted"] == pages  # type: ignore[index]
    assert stats["classes"]["collect"]["accepted"] == len(expected)  # type: ignore[index]


@pytest.mark.slow
async def test_max_profiles_caps_the_run(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    run_id = await start_search_run(services, GERMANY, max_profiles=30, source="test")
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, run_id)
    assert status is not None
    data = status.as_dict()
    assert (data["state"], data["ids_seen"], data["inserted"], data["pages_fetched"]) == (
        "finished",
        30,
        30,
        2,
    )
    assert sorted(await services.store.employees.mirrored_ids()) == matching_ids(simulator)[:30]


@pytest.mark.slow
async def test_profiles_synced_within_the_freshness_ttl_are_not_collected_again(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    expected = matching_ids(simulator)
    warm = "\n".join(map(str, expected[:10])).encode()
    await enqueue_lines(services, read_lines(io.BytesIO(warm)), "ids", source="warm-up")
    await run_fleet_worker(sim_settings, burst=True)

    run_id = await start_search_run(services, GERMANY, max_profiles=None, source="test")
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, run_id)
    assert status is not None
    data = status.as_dict()
    assert data["state"] == "finished"
    assert (data["skipped_fresh"], data["enqueued"]) == (10, len(expected) - 10)
    stats = await sim_stats(simulator)
    assert stats["classes"]["collect"]["accepted"] == len(expected)  # type: ignore[index]  # each once


@pytest.mark.slow
async def test_an_empty_result_finishes_at_once(sim_settings: Settings, services: Services) -> None:
    body = {"query": {"term": {"location_country": "Atlantis"}}}
    run_id = await start_search_run(services, body, max_profiles=None, source="test")
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, run_id)
    assert status is not None
    assert (status.state, status.as_dict()["pages_fetched"], status.accepted) == ("finished", 1, 0)


@pytest.mark.slow
async def test_a_query_the_api_refuses_fails_the_run_with_its_reason_and_is_not_retried(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    body = {"query": {"term": {"no_such_field": "x"}}}
    run_id = await start_search_run(services, body, max_profiles=None, source="test")
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, run_id)
    assert status is not None
    assert status.state == RunState.FAILED
    assert "400" in status.as_dict()["error"] and "no_such_field" in status.as_dict()["error"]
    stats = await sim_stats(simulator)
    assert stats["status_counts"] == {"400": 1}


@pytest.mark.slow
async def test_a_run_interrupted_and_resumed_after_redis_lost_everything_completes(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    expected = matching_ids(simulator)
    run_id = await start_search_run(services, GERMANY, max_profiles=None, source="test")
    slow = with_overrides(sim_settings, collect_rps=30, search_rps=2)
    with contextlib.suppress(TimeoutError):
        # "Killed" mid-run; a fresh limiter bucket starts one booking horizon ahead (review #16).
        await asyncio.wait_for(run_fleet_worker(slow, burst=True), timeout=1.5 + slow.limiter_max_ahead_s)
    before = await get_status(services, run_id)
    assert before is not None and 0 < before.as_dict()["pages_fetched"] < math.ceil(len(expected) / 20)

    redis = aioredis.Redis.from_url(sim_settings.redis_url)
    await redis.flushdb()  # the queue, the counters and the limiter state are gone
    await redis.aclose()
    report = await recover_run(services, run_id)
    assert report.search_page == before.as_dict()["pages_fetched"]
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, run_id)
    assert status is not None and status.state == RunState.FINISHED
    assert sorted(await services.store.employees.mirrored_ids()) == expected
    pages = math.ceil(len(expected) / 20)
    stats = await sim_stats(simulator)
    assert stats["classes"]["search"]["accepted"] <= pages + 1  # type: ignore[index]  # at most the in-flight page again
    assert stats["classes"]["collect"]["accepted"] <= len(expected) + 20  # type: ignore[index]
    # The killed worker's jobs were cancelled mid-way; their clean-up must have run while its
    # clients were open (worker/queue.py `_close_worker`). A client left open warns when collected:
    # here, in this test, rather than in whichever later test the collector happens to run.
    gc.collect()
