"""Webhooks end to end: the simulator's world changes, it POSTs notices to our receiver (the API on
a real socket), the inbox is expanded into a `webhook` run, a burst worker re-collects, and the
change feed shows the role events. Real Redis, the Mongo-wire server, the simulator; nothing mocked."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from devstack import processes as svc
from jobs.webhooks import observe_lag, webhook_tick
from simulator.app import RunningSimulator
from tests.conftest import MakeSimulator, enqueue_ids, opened_services
from tests.receiver_support import (
    TOKEN,
    api_server,
    cli,
    cli_lines,
    credits_charged,
    everyone,
    free_port,
    http,
    sim_admin,
    webhook_settings,
)
from worker import keys
from worker.run_model import RunKind, RunState
from worker.runtime import Services, WorkerContext


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    # Seed 2: the week's 20 changes fall on 20 different people (with seed 42 two change twice).
    return await make_simulator(
        seed=2,
        population=200,
        world_change_share_per_week=0.1,
        world_kind_weights={"role_started": 1.0},
        subscriptions_per_minute=1000,
    )


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


async def mirror_everyone(settings: Settings, services: Services) -> None:
    await enqueue_ids(services, everyone())
    await run_fleet_worker(settings, burst=True)
    assert await services.store.employees.count() == len(everyone())


async def subscribe_over_http(base: str, ids: list[int]) -> dict[str, object]:
    reply = await http("POST", f"{base}/v1/subscriptions", {"type": "experience", "ids": ids})
    assert reply.status == 201, reply.text
    created: dict[str, object] = reply.json()
    return created


async def queued(services: Services) -> int:
    return await services.queue.depth(keys.JOB_QUEUE)


@pytest.mark.slow
async def test_a_week_of_changes_refreshes_exactly_the_changed_profiles(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    await mirror_everyone(hook_settings, hook_services)
    created = await subscribe_over_http(base, everyone())
    assert str(created["webhook_url"]).startswith(f"{base}/v1/webhooks/coresignal/")
    spent_before = await credits_charged(simulator)

    advanced = await sim_admin(simulator, "POST", "advance", {"days": 7})
    changed = sorted({c["id"] for c in advanced["changes"]})
    assert len(changed) == 20
    assert [r["posts"] for r in advanced["rounds"]] == [1]
    assert await hook_services.store.webhooks.backlog() == 1  # in the inbox before the 202

    await run_fleet_worker(hook_settings, burst=True)

    assert await credits_charged(simulator) - spent_before == 20  # nothing else spent a credit
    runs = [r for r in await hook_services.store.runs.list_runs(state=None, before=None, limit=50)]
    (refresh,) = [r for r in runs if r.kind is RunKind.WEBHOOK]
    assert refresh.state is RunState.FINISHED and refresh.accepted == 20
    assert refresh.source == f"webhook:{created['id']}"
    assert await hook_services.store.employees.synced_by_run(everyone(), refresh.run_id) == set(changed)
    feed = await http("GET", f"{base}/v1/changes?type=role_started&limit=1000")
    assert feed.status == 200, feed.text
    events = feed.json()["changes"]
    assert sorted(e["employee_id"] for e in events) == changed
    for event in events:
        assert event["source"] == "webhook" and event["run_id"] == refresh.run_id
        assert "experience" in event["fields"]
        started = [e for e in event["events"] if e["type"] == "role_started"]
        assert len(started) == 1 and started[0]["date_to"] is None
        profile = (await hook_services.store.employees.get(event["employee_id"]) or {})["profile"]
        role = (started[0]["title"], started[0]["company_name"])
        assert role in {
            (p["title"], p["company_name"]) for p in profile["experience"] if not p.get("date_to")
        }
    assert await hook_services.store.webhooks.backlog() == 0


@pytest.mark.slow
async def test_the_same_batch_twice_is_collected_once(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    await mirror_everyone(hook_settings, hook_services)
    created = await subscribe_over_http(base, everyone())
    url = str(created["webhook_url"])
    named = everyone()[:5]
    body = json.dumps([{"member_id": i, "status": "changed"} for i in named]).encode()
    reordered = json.dumps([{"member_id": i, "status": "changed"} for i in reversed(named)]).encode()
    spent_before = await credits_charged(simulator)

    replies = [await http("POST", url, data=b, token=None) for b in (body, body, reordered)]

    assert [r.status for r in replies] == [202, 202, 202]
    assert [r.json()["duplicate"] for r in replies] == [False, True, False]
    await run_fleet_worker(hook_settings, burst=True, metrics=hook_services.metrics)
    assert await credits_charged(simulator) - spent_before == 5
    runs = await hook_services.store.runs.list_runs(state=None, before=None, limit=50)
    assert sum(r.accepted for r in runs if r.kind is RunKind.WEBHOOK) == 5
    metrics = hook_services.metrics.webhooks
    assert metrics.duplicates.labels("body")._value.get() == 1
    assert metrics.duplicates.labels("notice")._value.get() == 5


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"", 400),
        (b"not json", 400),
        (b"{", 400),
        (b"[]", 400),
        (b'{"member_id": 1, "status": "changed"}', 400),
        (b'[{"member_id": "1", "status": "changed"}]', 400),
        (b'[{"member_id": 1}]', 400),
        (b'[{"member_id": 1, "status": "changed", "extra": 1}]', 400),
        (b"\xff\xfe[]", 400),
        (b"[" + b",".join(b'{"member_id": 1, "status": "changed"}' for _ in range(40_000)) + b"]", 413),
        (b"[" + b",".join(b'{"member_id":1,"status":"a"}' for _ in range(10_001)) + b"]", 413),  # notices
    ],
)
async def test_bad_bodies_are_refused_and_nothing_is_stored(
    hook_services: Services, base: str, data: bytes, status: int
) -> None:
    created = await subscribe_over_http(base, everyone()[:3])

    reply = await http("POST", str(created["webhook_url"]), data=data, token=None)

    assert reply.status == status, reply.text
    assert await hook_services.store.webhooks.backlog() == 0
    assert await queued(hook_services) == 0


async def test_a_wrong_token_is_a_404_and_nothing_is_stored(hook_services: Services, base: str) -> None:
    created = await subscribe_over_http(base, everyone()[:3])
    real = str(created["webhook_url"])
    body = json.dumps([{"member_id": everyone()[0], "status": "changed"}]).encode()
    forged = [
        real[:-4] + "AAAA",
        f"{base}/v1/webhooks/coresignal/x",
        f"{base}/v1/webhooks/coresignal/{'a' * 43}",
    ]

    replies = [await http("POST", url, data=body, token=None) for url in forged]

    assert [r.status for r in replies] == [404, 404, 404]
    assert await hook_services.store.webhooks.backlog() == 0
    assert await queued(hook_services) == 0
    assert (await http("POST", real, data=body, token=None)).status == 202  # the real one works


@pytest.mark.slow
async def test_a_notice_survives_the_api_process_killed_after_its_202(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str, tmp_path: Path
) -> None:
    """A real `employee-sync api` process answers 202 and is SIGKILLed at once; the queued courtesy
    expansion is lost as well (as if the kill came first): the notice is in the inbox, and the
    periodic sweep turns it into a refresh all the same."""
    await mirror_everyone(hook_settings, hook_services)
    created = await subscribe_over_http(base, everyone())
    token = str(created["webhook_url"]).rsplit("/", 1)[1]
    named = everyone()[10:13]
    body = json.dumps([{"member_id": i, "status": "changed"} for i in named]).encode()
    port = free_port()
    proc = svc.spawn(
        svc.employee_sync_argv("api", "--port", str(port)),
        env=api_env(hook_settings),
        log_path=tmp_path / "api.log",
    )
    try:
        await asyncio.to_thread(svc.wait_for_port, "127.0.0.1", port, timeout_s=60, proc=proc)
        reply = await http(
            "POST", f"http://127.0.0.1:{port}/v1/webhooks/coresignal/{token}", data=body, token=None
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        await asyncio.to_thread(svc.stop, proc)
    assert reply.status == 202, reply.text
    (entry,) = await hook_services.store.webhooks.pending()
    assert await hook_services.queue.remove_queued(keys.JOB_QUEUE, entry)  # the courtesy job is gone too
    spent_before = await credits_charged(simulator)

    ctx = WorkerContext(services=hook_services)  # type: ignore[typeddict-item]
    assert (await webhook_tick(ctx)).startswith("queued 1 expansions")
    await run_fleet_worker(hook_settings, burst=True)

    assert await credits_charged(simulator) - spent_before == 3
    assert await hook_services.store.webhooks.backlog() == 0
    runs = await hook_services.store.runs.list_runs(state=None, before=None, limit=50)
    (refresh,) = [r for r in runs if r.kind is RunKind.WEBHOOK]
    assert await hook_services.store.employees.synced_by_run(named, refresh.run_id) == set(named)


def api_env(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "API_TOKENS": TOKEN,
        "CORESIGNAL_API_KEY": settings.coresignal_api_key.get_secret_value(),
        "CORESIGNAL_BASE_URL": settings.coresignal_base_url,
        "WEBHOOK_PUBLIC_BASE_URL": settings.webhook_public_base_url or "",
        "LOG_JSON": "true",
    }


@pytest.mark.slow
async def test_metrics_replay_and_the_changes_command(
    hook_settings: Settings, hook_services: Services, simulator: RunningSimulator, base: str
) -> None:
    mirrored = everyone()[:10]
    await enqueue_ids(hook_services, mirrored)
    await run_fleet_worker(hook_settings, burst=True)
    created = await subscribe_over_http(base, mirrored)
    url = str(created["webhook_url"])
    await sim_admin(
        simulator, "POST", "mutate", {"ids": mirrored[:3], "kind": "role_started", "deliver": False}
    )
    body = json.dumps([{"member_id": i, "status": "changed"} for i in mirrored[:3]]).encode()
    assert (await http("POST", url, data=body, token=None)).status == 202
    assert (await http("POST", url + "x", data=body, token=None)).status == 404
    assert (await http("POST", url, data=b"[{}]", token=None)).status == 400
    await run_fleet_worker(hook_settings, burst=True, metrics=hook_services.metrics)

    scraped = (await http("GET", f"{base}/metrics")).text
    for line in (
        'employee_sync_webhook_requests_total{code="202"} 1.0',
        'employee_sync_webhook_requests_total{code="404"} 1.0',
        'employee_sync_webhook_requests_total{code="400"} 1.0',
        'employee_sync_webhook_notices_total{notice_status="changed"} 3.0',
        "employee_sync_webhook_inbox_backlog 0.0",
        f'employee_sync_subscription_silent{{subscription="{created["id"]}"}} 0.0',
    ):
        assert line in scraped, line
    assert f'employee_sync_subscription_expires_in_seconds{{subscription="{created["id"]}"}}' in scraped
    assert await observe_lag(hook_services) + await observe_lag(hook_services) <= 1  # observed once
    assert hook_services.metrics.webhooks.lag._sum.get() > 0

    spent = await credits_charged(simulator)
    assert await cli(hook_settings, "webhooks", "replay") == {"replayed": 1}
    await run_fleet_worker(hook_settings, burst=True)
    assert await credits_charged(simulator) == spent  # refreshed after the notice: nothing to buy again
    lines = await cli_lines(hook_settings, "changes", "--type", "role_started")
    assert sorted(event["employee_id"] for event in lines) == sorted(mirrored[:3])
    assert {event["source"] for event in lines} == {"webhook"}
