"""The planner: skip fresh first, then bulk at BULK_MIN_ITEMS or more, else collect; and `plan`,
`enqueue --dry-run` and `--via` through `cli.main.main` (in this process, tests/cli_support.py),
spending nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from api.errors import ApiError
from api.validation import parse_run_request
from cli.wiring import run_fleet_worker
from config import Settings
from jobs.planner import plan_items, plan_search
from jobs.producers import create_list_run, create_search_run
from jobs.runs import get_status
from tests.bulk_support import bulk_settings, bulk_simulator, bulk_stats
from tests.cli_support import run_cli_in_process
from tests.conftest import MakeSimulator, population_ids
from worker.run_model import RunKind, utcnow
from worker.runtime import Services


def test_fresh_items_are_skipped_first_then_the_threshold_decides(settings: Settings) -> None:
    big = plan_items(settings, "ids", 5_000, 1_000, "auto")
    assert (big.left, big.choice, big.bulk is not None) == (4_000, "bulk", True)
    assert big.collect.requests == {"collect": 4_000} and big.collect.credits == big.bulk.credits == 4_000
    assert big.bulk.requests["bulk"] < 40  # one POST, its polls, one file: a handful of requests
    assert big.bulk.seconds < big.collect.seconds
    small = plan_items(settings, "ids", 5_000, 2_500, "auto")
    assert (small.left, small.choice) == (2_500, "collect")
    assert small.collect.seconds < small.bulk.seconds  # below the break-even the threshold sits near
    assert plan_items(settings, "ids", 10, 0, "bulk").choice == "bulk"
    names = plan_items(settings, "names", 50_000, 0, "auto")
    assert (names.choice, names.bulk) == ("collect", None)
    split = plan_search(settings, 25_000, None, "auto")
    assert split.choice == "bulk" and split.bulk is not None and split.bulk.requests["search"] == 26


@pytest.mark.slow
async def test_plan_ids_prints_fresh_credits_requests_and_time_and_spends_nothing(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    fresh = population_ids(3)
    for employee_id in fresh:  # already mirrored a moment ago
        await services.store.employees.upsert(
            employee_id, {"id": employee_id}, run_id="r", fetched_at=utcnow()
        )
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(map(str, population_ids(10))) + "\nnot-an-id\n")
    # No simulator at all: CORESIGNAL_BASE_URL points at a closed port, so nothing can be spent.
    # In a thread: the command runs its own event loop (asyncio.run), as in a process.
    result = await asyncio.to_thread(run_cli_in_process, settings, "plan", "ids", str(ids))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "items          10" in out and "already fresh  3" in out and "to sync        7" in out
    assert "collect 7" in out and "choice: collect (7 to sync < BULK_MIN_ITEMS 3,000)" in out
    as_json = await asyncio.to_thread(
        run_cli_in_process, settings, "plan", "ids", str(ids), "--json", "--via", "bulk"
    )
    data = json.loads(as_json.stdout)
    assert (data["choice"], data["bulk"]["credits"], data["fresh"]) == ("bulk", 7, 3)
    dry = await asyncio.to_thread(run_cli_in_process, settings, "enqueue", "ids", str(ids), "--dry-run")
    assert dry.returncode == 0 and "choice: collect" in dry.stdout
    assert await services.store.runs.count_all() == 0  # a dry run creates nothing
    refused = await asyncio.to_thread(
        run_cli_in_process, settings, "enqueue", "names", str(ids), "--via", "bulk"
    )
    assert refused.returncode == 2 and "names stay on collect" in refused.stderr


@pytest.mark.slow
async def test_enqueue_ids_via_auto_goes_bulk_at_the_threshold_and_skips_fresh(
    settings: Settings, services: Services, make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    simulator = await bulk_simulator(make_simulator, population=120)
    await services.store.employees.upsert(
        population_ids(1)[0], {"id": population_ids(1)[0]}, run_id="r", fetched_at=utcnow()
    )
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(map(str, population_ids(120))))
    result = await asyncio.to_thread(
        run_cli_in_process,
        settings,
        "enqueue",
        "ids",
        "-",
        "--json",
        stdin=ids.read_bytes(),
        BULK_MIN_ITEMS="100",
    )
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    run = await services.store.runs.get(run_id)
    assert run is not None and run.kind is RunKind.BULK
    await run_fleet_worker(bulk_settings(settings, simulator), burst=True)
    status = await get_status(services, run_id)
    assert status is not None
    data = status.as_dict()
    assert (data["state"], data["skipped_fresh"], data["inserted"]) == ("finished", 1, 119), data
    [request] = (await bulk_stats(simulator))["requests"].values()
    assert request["records"] == 119  # the fresh profile was not paid for


@pytest.mark.slow
async def test_plan_search_counts_once_and_submits_nothing(
    settings: Settings, services: Services, make_simulator: MakeSimulator, tmp_path: Path
) -> None:
    simulator = await bulk_simulator(make_simulator, population=500)
    query = tmp_path / "q.json"
    query.write_text(json.dumps({"query": {"range": {"id": {"lt": population_ids(1, first=400)[0]}}}}))
    # In a thread: the simulator answering the count runs on this test's event loop.
    result = await asyncio.to_thread(
        run_cli_in_process, settings, "plan", "search", str(query), CORESIGNAL_BASE_URL=simulator.base_url
    )
    assert result.returncode == 0, result.stderr
    assert "items          400" in result.stdout and "choice: collect" in result.stdout
    stats = await bulk_stats(simulator)
    assert stats["posts_by_fingerprint"] == {}  # no data request: only the count was made
    assert await services.store.runs.count_all() == 0


async def test_via_on_the_api_body_and_in_the_producers(services: Services, settings: Settings) -> None:
    parsed = parse_run_request({"employee_ids": [1, 2], "via": "bulk"}, 100)
    assert getattr(parsed, "via", None) == "bulk"
    with pytest.raises(ApiError, match="stay on collect"):
        parse_run_request({"shorthand_names": ["a-b"], "via": "bulk"}, 100)
    with pytest.raises(ApiError, match="one of auto, collect or bulk"):
        parse_run_request({"employee_ids": [1], "via": "fax"}, 100)
    receipt = await create_list_run(services, "ids", population_ids(5), source="api", via="bulk")
    run = await services.store.runs.get(receipt.run_id)
    assert run is not None and run.kind is RunKind.BULK and run.bulk is not None
    assert len(await services.store.ledger.of_run(receipt.run_id)) == 1
    plain = await create_list_run(services, "ids", population_ids(5), source="api")
    assert (await services.store.runs.get(plain.run_id)).kind is RunKind.IDS  # type: ignore[union-attr]
    search_id = await create_search_run(
        services, {"query": {"match_all": {}}}, max_profiles=10, source="api", via="auto"
    )
    search = await services.store.runs.get(search_id)
    assert search is not None and search.bulk is not None and search.bulk.auto
