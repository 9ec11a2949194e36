"""`--webhooks` syncs: the scheduler subscribes the sync's selection (ids chunked under the API's
limit, a query as es_dsl), the simulator's changing world sends notices to our receiver, the
changed members are refreshed before the next sweep and the sweep does not buy them again; a
deleted sync's subscriptions are deleted upstream; a refused query is a reason, not a failed tick.
Real Redis, the Mongo-wire server, the simulator and our API on a socket; nothing mocked."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.scheduler import scheduler_tick
from jobs.subscriptions import recreate, subscriptions_tick
from jobs.sync_webhooks import ensure_subscriptions
from jobs.syncs import SyncRequest, create_sync, delete_sync, get_sync, sync_view
from simulator.app import RunningSimulator
from tests.conftest import MakeSimulator, enqueue_ids, worker_context
from tests.receiver_support import (
    api_server,
    credits_charged,
    everyone,
    free_port,
    http,
    sim_admin,
    webhook_settings,
)
from worker.client import SubscriptionClient
from worker.errors import SubscriptionNotFoundError
from worker.run_model import RunKind, RunState
from worker.runtime import Services
from worker.sync_model import Sync, SyncSource

MAX_IDS = 100  # the simulator's ids-per-subscription limit in these tests, and ours


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    # Seed 2: the week's 20 changes fall on 20 different people (as in tests/test_webhooks.py).
    return await make_simulator(
        seed=2,
        population=200,
        world_change_share_per_week=0.1,
        world_kind_weights={"role_started": 1.0},
        subscriptions_per_minute=1000,
        subscription_max_ids=MAX_IDS,
    )


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture
async def ctx(settings: Settings, simulator: RunningSimulator, port: int) -> AsyncIterator[dict[str, Any]]:
    tuned = webhook_settings(
        settings, simulator, port, search_rps=100, sync_scheduler=False, sync_subscription_max_ids=MAX_IDS
    )
    async with worker_context(tuned) as context:
        yield context


def ids_request(name: str, ids: list[int], **fields: Any) -> SyncRequest:
    lines = [(n, str(i)) for n, i in enumerate(ids, start=1)]
    return SyncRequest(name=name, source=SyncSource.IDS, lines=lines, webhooks=True, **fields)


async def tick(ctx: dict[str, Any], name: str) -> Sync:
    await scheduler_tick(ctx)  # type: ignore[arg-type]
    return await get_sync(ctx["services"], name)


@pytest.mark.slow
async def test_notices_refresh_members_between_ticks_and_the_sweep_does_not_buy_them_again(
    ctx: dict[str, Any], simulator: RunningSimulator, port: int
) -> None:
    services: Services = ctx["services"]
    settings: Settings = ctx["settings"]
    await enqueue_ids(services, everyone())  # the mirror is full and current at t0
    await run_fleet_worker(settings, burst=True)
    t0 = time.monotonic()
    # max-age 8 s, every 1 s: a member is due once its copy is 7 s old.
    request = ids_request("hooked", everyone(), max_age="8s", every="1s", sweep_check=False)
    created = await create_sync(services, request)
    assert (await sync_view(services, created))["webhook_state"] == "pending"

    async with api_server(settings, services, port) as base:
        first = await tick(ctx, "hooked")  # subscribes; nothing is due yet
        assert first.last_plan["sweep"] == 0 and first.current_run_id is None
        reply = await http("GET", f"{base}/v1/syncs/hooked")
        assert reply.status == 200, reply.text
        shown = reply.json()
        assert shown["webhook_state"] == "active" and shown["webhook_error"] is None
        assert [(s["selection"], s["ids_count"], s["status"]) for s in shown["webhook_subscriptions"]] == [
            ("ids", 100, "active"),
            ("ids", 100, "active"),
        ]  # 200 members, at most 100 ids a subscription
        sub_ids = [s["id"] for s in shown["webhook_subscriptions"]]
        for sub_id in sub_ids:  # they exist upstream
            assert (await SubscriptionClient(ctx["client"]).get_subscription(sub_id)).status == "active"
        spent = await credits_charged(simulator)

        await asyncio.sleep(max(0.0, t0 + 7.5 - time.monotonic()))  # every copy is now due
        advanced = await sim_admin(simulator, "POST", "advance", {"days": 7})
        changed = sorted({c["id"] for c in advanced["changes"]})
        assert len(changed) == 20
        await run_fleet_worker(settings, burst=True)  # the notices' refresh, before the next tick

        runs = await services.store.runs.list_runs(state=None, before=None, limit=50)
        refreshes = [r for r in runs if r.kind is RunKind.WEBHOOK]
        assert {r.source for r in refreshes} <= {f"webhook:{s}" for s in sub_ids}
        assert all(r.state is RunState.FINISHED for r in refreshes)
        refreshed: set[int] = set()
        for run in refreshes:
            refreshed |= await services.store.employees.synced_by_run(everyone(), run.run_id)
        assert refreshed == set(changed)
        assert await credits_charged(simulator) - spent == 20
        for employee_id in changed:
            mirrored = await services.store.employees.get(employee_id)
            upstream = await sim_admin(simulator, "GET", f"profiles/{employee_id}")
            assert mirrored is not None and mirrored["profile"]["last_updated"] == upstream["last_updated"]

        sweep = await tick(ctx, "hooked")  # everyone else is due; the 20 are fresh from their notices
        assert sweep.last_plan["sweep"] == 180
        await run_fleet_worker(settings, burst=True)
        run = await services.store.runs.get(sweep.current_run_id or "")
        assert run is not None and run.state is RunState.FINISHED and run.accepted == 180
        assert await services.store.employees.synced_by_run(changed, run.run_id) == set()
        assert await credits_charged(simulator) - spent == 20 + 180  # each changed member bought once


@pytest.mark.slow
async def test_subscriptions_are_made_once_and_deleted_with_their_sync(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    subs = SubscriptionClient(ctx["client"])
    await create_sync(services, ids_request("team", everyone()[:150]))
    await tick(ctx, "team")
    owned = await services.store.webhooks.subscriptions_of_sync("team")
    assert sorted(len(doc["ids"]) for doc in owned) == [50, 100]
    covered = sorted(i for doc in owned for i in doc["ids"])
    assert covered == sorted(everyone()[:150])  # every member once
    again = await ensure_subscriptions(ctx, await get_sync(services, "team"))  # type: ignore[arg-type]
    assert again == "webhooks: 0 subscription(s) made"
    assert len(await services.store.webhooks.subscriptions_of_sync("team")) == 2

    # The renewer's recreate (past the one-year limit) keeps the subscription its sync's.
    renewed = await recreate(services, subs, owned[0])
    assert renewed["sync"] == "team" and renewed["_id"] != owned[0]["_id"]
    current = await services.store.webhooks.subscriptions_of_sync("team")
    assert len(current) == 2

    await delete_sync(services, "team")
    outcome = await subscriptions_tick(ctx)  # type: ignore[arg-type]
    assert outcome.startswith("renewer: 2 done")
    assert await services.store.webhooks.subscriptions_of_sync("team") == []
    for doc in current:
        with pytest.raises(SubscriptionNotFoundError):
            await subs.get_subscription(doc["_id"])


@pytest.mark.slow
async def test_a_query_sync_subscribes_its_query_and_a_refused_one_is_a_reason(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    country = (await sim_admin(simulator, "GET", f"profiles/{everyone()[0]}"))["location_country"]
    query = {"term": {"location_country": country}}
    request = SyncRequest(
        name="q", source=SyncSource.QUERY, query_text=json.dumps({"query": query}), webhooks=True
    )
    await create_sync(services, request)
    first = await tick(ctx, "q")
    (doc,) = await services.store.webhooks.subscriptions_of_sync("q")
    assert doc["selection"] == "es_dsl" and json.loads(doc["query_json"]) == {"query": query}
    assert first.last_plan["delta"] > 0  # the tick planned as usual
    upstream = await SubscriptionClient(ctx["client"]).get_subscription(doc["_id"])
    assert upstream.status == "active"

    dated = {"range": {"last_updated": {"gte": "2020-01-01"}}}
    body = json.dumps({"query": {"bool": {"filter": [query, dated]}}})
    await create_sync(
        services, SyncRequest(name="dated", source=SyncSource.QUERY, query_text=body, webhooks=True)
    )
    refused = await tick(ctx, "dated")
    assert refused.webhook_error is not None and "date filters" in refused.webhook_error
    assert refused.last_plan.get("delta", 0) > 0 and "error" not in refused.last_plan
    view = await sync_view(services, refused)
    assert view["webhook_state"] == "failed" and view["webhook_subscriptions"] == []
