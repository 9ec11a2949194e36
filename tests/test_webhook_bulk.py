"""Webhook batches the planner sends by bulk: a week of notices at or over BULK_MIN_ITEMS becomes one
bulk data request at the simulator (no collect request), and the profiles are mirrored; a smaller
batch is still collected id by id. Real Redis, the Mongo-wire server, the simulator; nothing mocked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from simulator.app import RunningSimulator
from tests.bulk_support import bulk_settings, bulk_simulator
from tests.conftest import MakeSimulator, opened_services
from tests.receiver_support import api_server, everyone, free_port, http, sim_admin, webhook_settings
from worker.run_model import Run, RunKind, RunState
from worker.runtime import Services

# The test's planner threshold: the week's 20 changes are over it, a batch of 5 is under it.
BULK_MIN_ITEMS = 10


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    # Seed 2: the week's 20 changes fall on 20 different people (as in tests/test_webhooks.py).
    return await bulk_simulator(
        make_simulator,
        200,
        seed=2,
        world_change_share_per_week=0.1,
        world_kind_weights={"role_started": 1.0},
        subscriptions_per_minute=1000,
    )


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def hook_settings(settings: Settings, simulator: RunningSimulator, port: int) -> Settings:
    hooks = webhook_settings(settings, simulator, port)
    return bulk_settings(hooks, simulator, bulk_min_items=BULK_MIN_ITEMS)


@pytest.fixture
async def hook_services(hook_settings: Settings) -> AsyncIterator[Services]:
    async with opened_services(hook_settings) as opened:
        yield opened


@pytest.fixture
async def base(hook_settings: Settings, hook_services: Services, port: int) -> AsyncIterator[str]:
    async with api_server(hook_settings, hook_services, port) as url:
        yield url


async def subscribe(base: str, ids: list[int]) -> dict[str, Any]:
    reply = await http("POST", f"{base}/v1/subscriptions", {"type": "experience", "ids": ids})
    assert reply.status == 201, reply.text
    created: dict[str, Any] = reply.json()
    return created


async def stats(simulator: RunningSimulator) -> dict[str, Any]:
    return dict(await sim_admin(simulator, "GET", "stats"))


async def refresh_runs(services: Services, subscription_id: str) -> list[Run]:
    runs = await services.store.runs.list_runs(state=None, before=None, limit=50)
    return [r for r in runs if r.source == f"webhook:{subscription_id}"]


@pytest.mark.slow
async def test_a_week_of_notices_over_the_threshold_is_one_bulk_data_request(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    created = await subscribe(base, everyone())  # ids: members not mirrored yet are collected
    advanced = await sim_admin(simulator, "POST", "advance", {"days": 7})
    changed = sorted({c["id"] for c in advanced["changes"]})
    assert len(changed) == 20 >= BULK_MIN_ITEMS

    await run_fleet_worker(hook_settings, burst=True)

    after = await stats(simulator)
    assert after["classes"]["collect"]["accepted"] == 0  # not one per-id collect
    requests = list(after["bulk"]["requests"].values())
    assert len(requests) == 1 and requests[0]["kind"] == "id_file" and requests[0]["records"] == 20
    assert after["credits_charged"] == 20  # one credit per record delivered, as by collect
    (refresh,) = await refresh_runs(hook_services, str(created["id"]))
    assert refresh.kind is RunKind.BULK and refresh.state is RunState.FINISHED
    assert refresh.final_counts.get("inserted") == 20 and refresh.accepted == 20
    assert await hook_services.store.employees.synced_by_run(everyone(), refresh.run_id) == set(changed)
    for employee_id in changed:
        mirrored = await hook_services.store.employees.get(employee_id)
        upstream = await sim_admin(simulator, "GET", f"profiles/{employee_id}")
        assert mirrored is not None and mirrored["profile"]["last_updated"] == upstream["last_updated"]
    assert await hook_services.store.webhooks.backlog() == 0


@pytest.mark.slow
async def test_a_batch_under_the_threshold_is_still_collected_id_by_id(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    created = await subscribe(base, everyone())
    named = everyone()[:5]
    body = json.dumps([{"member_id": i, "status": "changed"} for i in named]).encode()
    reply = await http("POST", str(created["webhook_url"]), data=body, token=None)
    assert reply.status == 202, reply.text

    await run_fleet_worker(hook_settings, burst=True)

    after = await stats(simulator)
    assert after["classes"]["collect"]["accepted"] == 5
    assert after["bulk"]["requests"] == {}  # no data request
    (refresh,) = await refresh_runs(hook_services, str(created["id"]))
    assert refresh.kind is RunKind.WEBHOOK and refresh.state is RunState.FINISHED
    assert await hook_services.store.employees.synced_by_run(named, refresh.run_id) == set(named)
