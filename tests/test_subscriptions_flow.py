"""Subscriptions: created by the CLI and over HTTP, renewed before expiry and recreated past the
one-year limit; role_ended / role_changed news reaches the feed. Simulator, real Redis, Mongo-wire."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from jobs import subscriptions
from simulator.app import RunningSimulator
from tests.conftest import MakeSimulator, enqueue_ids, opened_services
from tests.receiver_support import (
    api_server,
    cli,
    credits_charged,
    everyone,
    free_port,
    http,
    sim_admin,
    webhook_settings,
)
from worker.client import SubscriptionClient
from worker.runtime import Services


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=200, world_change_share_per_week=0, subscriptions_per_minute=1000)


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
def hook_settings(settings: Settings, simulator: RunningSimulator, port: int) -> Settings:
    return webhook_settings(settings, simulator, port)


@pytest.fixture
async def hook_services(hook_settings: Settings) -> AsyncIterator[Services]:
    async with opened_services(hook_settings) as opened:
        yield opened


@pytest.fixture
async def base(hook_settings: Settings, hook_services: Services, port: int) -> AsyncIterator[str]:
    async with api_server(hook_settings, hook_services, port) as url:
        yield url


async def world_now(sim: RunningSimulator) -> datetime:
    return datetime.fromisoformat((await sim_admin(sim, "GET", "world"))["now"])


@pytest.mark.slow
async def test_subscribe_with_the_cli_and_over_http(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str, tmp_path: Path
) -> None:
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(map(str, everyone()[:50])) + "\n")

    by_cli = await cli(hook_settings, "subscriptions", "create", "--ids", str(ids_file), "--type", "profile")
    reply = await http("POST", f"{base}/v1/subscriptions", {"type": "experience", "all": True})
    assert reply.status == 201, reply.text
    by_http = reply.json()

    upstream = simulator.state.subscriptions.subscriptions
    assert upstream[by_cli["id"]].ids == set(everyone()[:50])
    assert (by_cli["type"], by_cli["collect_unknown"], by_cli["ids_count"]) == ("profile", True, 50)
    assert (by_http["selection"], by_http["collect_unknown"]) == ("all", False)
    for created in (by_cli, by_http):
        assert created["webhook_url"].startswith(f"{base}/v1/webhooks/coresignal/")
        assert upstream[created["id"]].webhook_url == created["webhook_url"]
        token = created["webhook_url"].rsplit("/", 1)[1]
        assert token not in json.dumps(await hook_services.store.webhooks.subscriptions(), default=str)
    listed = await cli(hook_settings, "subscriptions", "list")
    assert sorted(s["id"] for s in listed) == sorted([by_cli["id"], by_http["id"]])
    assert all("webhook_url" not in s and "token_hash" not in s for s in listed)
    shown = await http("GET", f"{base}/v1/subscriptions/{by_http['id']}")
    assert shown.status == 200 and shown.json()["upstream"]["status"] == "active"
    assert (await http("DELETE", f"{base}/v1/subscriptions/{by_http['id']}")).status == 204
    assert by_http["id"] not in upstream
    assert (await http("GET", f"{base}/v1/subscriptions/{by_http['id']}")).status == 404
    assert (await http("POST", f"{base}/v1/subscriptions", {"ids": [1], "all": True})).status == 400


async def test_renewed_before_expiry_and_recreated_past_the_year(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    reply = await http("POST", f"{base}/v1/subscriptions", {"type": "experience", "ids": everyone()[:5]})
    first = reply.json()
    client = subscriptions.open_client(hook_services)
    subs = SubscriptionClient(client)
    try:
        assert await subscriptions.renew_due(hook_services, subs, now=await world_now(simulator)) == []
        await sim_admin(simulator, "POST", "advance", {"days": 80})  # 11 days left: inside the window
        assert await subscriptions.renew_due(hook_services, subs, now=await world_now(simulator)) == [
            f"renewed {first['id']}"
        ]
        renewed = await hook_services.store.webhooks.subscription(first["id"])
        assert renewed is not None
        assert (renewed["expiring_at"] - renewed["created_at"]).days == 182
        done: list[str] = []
        for _ in range(3):  # renew at 171 and 262 days; at 353 a renew would pass 365: recreate
            await sim_admin(simulator, "POST", "advance", {"days": 91})
            done += await subscriptions.renew_due(hook_services, subs, now=await world_now(simulator))
        assert done[:2] == [f"renewed {first['id']}"] * 2
        assert done[2].startswith(f"recreated {first['id']} as ")
        (current,) = await hook_services.store.webhooks.subscriptions()
        assert current["_id"] != first["id"] and current["ids"] == everyone()[:5]
        upstream = simulator.state.subscriptions.subscriptions
        assert set(upstream) == {current["_id"]}  # the old one was deleted upstream
        assert upstream[current["_id"]].webhook_url != first["webhook_url"]  # a new capability token
    finally:
        await client.close()


@pytest.mark.slow
async def test_role_ended_and_role_changed_reach_the_feed(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    await enqueue_ids(hook_services, everyone()[:30])
    await run_fleet_worker(hook_settings, burst=True)
    reply = await http("POST", f"{base}/v1/subscriptions", {"type": "profile", "ids": everyone()[:30]})
    assert reply.status == 201, reply.text
    spent_before = await credits_charged(simulator)
    applied: dict[int, str] = {}
    for kind, ids in (("role_ended", everyone()[:3]), ("role_changed", everyone()[3:6])):
        body = await sim_admin(simulator, "POST", "mutate", {"ids": ids, "kind": kind})
        applied.update({c["id"]: c["kind"] for c in body["changes"]})

    await run_fleet_worker(hook_settings, burst=True)

    assert await credits_charged(simulator) - spent_before == 6
    feed = (await http("GET", f"{base}/v1/changes?limit=100")).json()["changes"]
    by_employee = {e["employee_id"]: {ev["type"] for ev in e["events"]} for e in feed}
    assert set(by_employee) == set(applied)
    for employee_id, kind in applied.items():
        assert by_employee[employee_id] == {kind}, (employee_id, by_employee[employee_id])
