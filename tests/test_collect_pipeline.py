"""The collect pipeline end to end, in process: producer → Redis queue → burst worker → simulator → MongoDB.

Real Redis, the Mongo-wire server and the simulator on a real socket; nothing is mocked.
"""

from __future__ import annotations

import io

import aiohttp
import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.inputs import read_lines
from jobs.producers import Receipt, enqueue_lines
from jobs.runs import RunState, get_status
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import MakeSimulator, with_overrides
from worker import keys
from worker.runtime import Services

POPULATION = 300


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=POPULATION)


@pytest.fixture
def sim_settings(settings: Settings, simulator: RunningSimulator) -> Settings:
    return with_overrides(
        settings, coresignal_base_url=simulator.base_url, collect_rps=300, worker_concurrency=20
    )


async def enqueue(services: Services, text: str, kind: str = "ids") -> Receipt:
    return await enqueue_lines(
        services,
        read_lines(io.BytesIO(text.encode())),
        kind,  # type: ignore[arg-type]
        source="test",
    )


async def admin(sim: RunningSimulator, method: str, path: str, body: object = None) -> object:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://{sim.host}:{sim.port}/_sim/{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


def ids(*indexes: int) -> list[int]:
    return [Population.id_at(i) for i in indexes]


@pytest.mark.slow
async def test_an_id_run_mirrors_every_profile_and_finishes(
    sim_settings: Settings, services: Services
) -> None:
    wanted = ids(*range(20))
    receipt = await enqueue(services, "\n".join(map(str, wanted)) + "\n13\nnot-an-id\n")
    assert (receipt.accepted, receipt.rejected_count) == (21, 1)

    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None
    assert status.state == RunState.FINISHED
    counts = status.as_dict()
    assert (counts["inserted"], counts["not_found"], counts["failed"], counts["queued"]) == (20, 1, 0, 0)
    assert await services.store.employees.count() == 20
    doc = await services.store.employees.get(wanted[0])
    assert doc is not None and doc["profile"]["id"] == wanted[0]


@pytest.mark.slow
async def test_names_and_profile_urls_resolve_to_the_same_employees(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    population = Population(seed=simulator.state.config.seed, size=POPULATION)
    slugs = [population.profile(i)["shorthand_names"][0] for i in ids(1, 2, 3)]  # type: ignore[index]
    lines = [slugs[0], f"https://www.linkedin.com/in/{slugs[1]}/", f"linkedin.com/in/{slugs[2]}", "x y"]
    receipt = await enqueue(services, "\n".join(lines), kind="names")
    assert (receipt.accepted, receipt.rejected_count) == (3, 1)

    await run_fleet_worker(sim_settings, burst=True)

    assert set(ids(1, 2, 3)) <= await services.store.employees.mirrored_ids()


@pytest.mark.slow
async def test_a_replayed_run_changes_nothing_and_a_real_change_is_seen(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    text = "\n".join(map(str, ids(*range(10))))
    await enqueue(services, text)
    await run_fleet_worker(sim_settings, burst=True)

    await admin(simulator, "POST", f"profiles/{ids(4)[0]}/mutate")
    replay = await enqueue(services, text)
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, replay.run_id)
    assert status is not None
    assert (status.counts.get("unchanged"), status.counts.get("changed")) == (9, 1)
    assert await services.store.employees.count() == 10
    changes = await services.store.employees.changes_of()
    assert [c["employee_id"] for c in changes] == ids(4)


@pytest.mark.slow
async def test_a_known_profile_that_now_404s_becomes_a_tombstone(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    gone = ids(7)[0]
    await enqueue(services, str(gone))
    await run_fleet_worker(sim_settings, burst=True)
    await admin(simulator, "POST", f"profiles/{gone}/remove")

    receipt = await enqueue(services, str(gone))
    await run_fleet_worker(sim_settings, burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.counts.get("not_found") == 1
    doc = await services.store.employees.get(gone)
    assert doc is not None, "a tombstone keeps the document"
    assert doc["sync"]["deleted_at"] is not None
    assert doc["profile"]["id"] == gone


@pytest.mark.slow
async def test_transient_faults_are_retried_until_every_profile_lands(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    await admin(simulator, "PATCH", "config", {"error_rate_5xx": 0.25, "malformed_rate": 0.1})
    settings = with_overrides(sim_settings, max_tries=12)
    receipt = await enqueue(services, "\n".join(map(str, ids(*range(30)))))

    await run_fleet_worker(settings, burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    assert status.counts.get("inserted") == 30
    assert status.counts.get("retries", 0) > 0
    assert await services.store.dead_letters.count() == 0


@pytest.mark.slow
async def test_a_refused_api_key_is_dead_lettered_once_never_retried(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    settings = with_overrides(sim_settings, coresignal_api_key="wrong-key-" + "0" * 22)
    receipt = await enqueue(services, "\n".join(map(str, ids(1, 2, 3))))

    await run_fleet_worker(settings, burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    assert status.counts.get("failed") == 3 and status.counts.get("retries", 0) == 0
    letters = await services.store.dead_letters.list(receipt.run_id)
    assert {d.error_type for d in letters} == {"AuthError"}
    assert all(d.attempts == 1 and d.status == 401 for d in letters)
    assert all("401" in d.reason for d in letters)
    stats = await admin(simulator, "GET", "stats")
    assert stats["status_counts"] == {"401": 3}  # type: ignore[index]


@pytest.mark.slow
async def test_an_employee_already_queued_by_another_run_is_not_queued_twice(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    first = await enqueue(services, "\n".join(map(str, ids(1, 2))))
    second = await enqueue(services, "\n".join(map(str, ids(2, 3))))
    assert second.accepted == 2
    waiting = await get_status(services, second.run_id)
    # The shared id waits on the first run's job: no outcome yet, so the run is not done with it.
    assert waiting is not None and waiting.counts.get("shared") == 1 and waiting.processed == 0

    await run_fleet_worker(sim_settings, burst=True)

    for receipt in (first, second):
        status = await get_status(services, receipt.run_id)
        assert status is not None and status.state == RunState.FINISHED and status.done == 2
    stats = await admin(simulator, "GET", "stats")
    assert stats["classes"]["collect"]["accepted"] == 3  # type: ignore[index]


async def test_duplicate_lines_in_one_input_are_collected_once(services: Services) -> None:
    receipt = await enqueue(services, "5\n5\n6\n5\n")
    assert (receipt.accepted, receipt.duplicates) == (2, 2)
    assert await services.queue.depth(keys.JOB_QUEUE) == 2


@pytest.mark.slow
async def test_a_429_slows_the_whole_fleet_instead_of_storming(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    # Our budget is set 4x too high for this key: the upstream 429s must make everyone back off.
    await admin(simulator, "PATCH", "config", {"collect_rps": 10, "retry_after_s": 1.0})
    settings = with_overrides(sim_settings, collect_rps=40, rate_safety_margin=0.0, max_tries=20)
    receipt = await enqueue(services, "\n".join(map(str, ids(*range(60)))))

    await run_fleet_worker(settings, burst=True)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.counts.get("inserted") == 60
    stats = await admin(simulator, "GET", "stats")
    rejected = stats["classes"]["collect"]["rejected_429"]  # type: ignore[index]
    assert rejected > 0, "the scenario must provoke 429s"
    # Without a shared cool-down, 40 rps against a limit of 10 gets ~3 refusals per success.
    assert rejected < 60 / 2
    assert status.counts.get("upstream_429") == rejected
