"""Scheduler ticks in process against the simulator: the delta collects exactly what changed, the
sweep fills and then waits, budgets cut the sweep with a reason, the watermark moves only after
the run committed. The lease and real worker processes are in tests/test_sync_fleet.py (slow)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from cli.wiring import run_fleet_worker
from config import Settings
from jobs.scheduler import scheduler_tick
from jobs.sync_runs import delta_ids
from jobs.syncs import SyncRequest, create_sync, get_sync, run_now
from simulator.app import RunningSimulator
from tests.conftest import MakeSimulator, population_ids, with_overrides, worker_context
from worker.freshness import freshness_of
from worker.metrics_server import render_metrics
from worker.run_model import utcnow
from worker.runtime import Services
from worker.sync_model import Sync, SyncSource

POPULATION = 400


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=POPULATION)


@pytest.fixture
def sim_settings(settings: Settings, simulator: RunningSimulator) -> Settings:
    # The in-process burst worker must not plan on its own: the test ticks by hand.
    return with_overrides(
        settings,
        coresignal_base_url=simulator.base_url,
        collect_rps=300,
        search_rps=100,
        sync_scheduler=False,
    )


@pytest.fixture
async def ctx(sim_settings: Settings) -> AsyncIterator[dict[str, Any]]:
    async with worker_context(sim_settings) as context:
        yield context


async def sim_admin(sim: RunningSimulator, method: str, path: str, body: object = None) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://{sim.host}:{sim.port}/_sim/{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def collects(sim: RunningSimulator) -> int:
    return int((await sim_admin(sim, "GET", "stats"))["classes"]["collect"]["accepted"])


async def country_sync(sim: RunningSimulator, **fields: Any) -> SyncRequest:
    """Sync "q": a query for everyone in the first simulated employee's country."""
    country = (await sim_admin(sim, "GET", f"profiles/{population_ids(1)[0]}"))["location_country"]
    body = {"query": {"term": {"location_country": country}}}
    return SyncRequest(name="q", source=SyncSource.QUERY, query_text=json.dumps(body), **fields)


async def tick(ctx: dict[str, Any], name: str) -> Sync:
    """Make the sync due, tick once, collect what it planned; the sync as the tick left it."""
    services: Services = ctx["services"]
    await run_now(services, name)
    await scheduler_tick(ctx)  # type: ignore[arg-type]
    await run_fleet_worker(ctx["settings"], burst=True)
    return await get_sync(services, name)


@pytest.mark.slow
async def test_a_query_sync_collects_exactly_the_changed_profiles(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    await create_sync(services, await country_sync(simulator))

    first = await tick(ctx, "q")  # no watermark yet: the whole query, every match collected
    matches = set(await services.store.syncs.member_ids("q"))
    assert first.last_plan["delta"] == len(matches) > 0 and first.last_plan["sweep"] == 0
    assert first.current_run_id is not None and first.watermark is None

    second = await tick(ctx, "q")  # settles the first run: the watermark moves, nothing is collected
    assert second.watermark is not None
    assert second.last_plan["delta"] == 0 and second.current_run_id is None

    others = [i for i in population_ids(POPULATION) if i not in matches]
    changed, unrelated = sorted(matches)[:5], others[:3]
    await sim_admin(simulator, "POST", "mutate", {"ids": changed + unrelated, "kind": "role_started"})
    before = await collects(simulator)
    third = await tick(ctx, "q")
    assert third.last_plan["delta"] == len(changed) and third.last_plan["sweep"] == 0
    run = await services.store.runs.get(third.current_run_id or "")
    assert run is not None and run.sync is not None
    assert sorted([i async for i in delta_ids(services, run)]) == changed
    assert await collects(simulator) - before == len(changed)  # nothing else was bought
    for employee_id in changed:
        mirrored = await services.store.employees.get(employee_id)
        upstream = await sim_admin(simulator, "GET", f"profiles/{employee_id}")
        assert mirrored is not None and mirrored["profile"]["last_updated"] == upstream["last_updated"]
    for employee_id in unrelated:
        assert await services.store.employees.get(employee_id) is None

    fourth = await tick(ctx, "q")  # the watermark moves past the changes only now, after the commit
    assert fourth.watermark is not None and fourth.watermark > (second.watermark or "")
    assert fourth.last_plan["delta"] == 0


@pytest.mark.slow
async def test_a_sweep_fills_the_members_then_waits_until_they_age(ctx: dict[str, Any]) -> None:
    services: Services = ctx["services"]
    ids = population_ids(30)
    lines = list(enumerate(map(str, ids), start=1))
    await create_sync(
        services, SyncRequest(name="s", source=SyncSource.IDS, lines=lines, max_age="1h", every="10m")
    )
    first = await tick(ctx, "s")
    assert first.last_plan["sweep"] == 30 and first.last_plan["via"] == "collect"
    fresh = await freshness_of(services.store, _budgets(ctx), first)
    assert fresh.mirrored == 30 and fresh.over_max_age == 0
    second = await tick(ctx, "s")
    assert second.last_plan["sweep"] == 0 and second.sweep_paused_reason is None
    text = (await render_metrics(services))[0].decode()
    assert 'employee_sync_mirror_staleness_seconds_bucket{le="+Inf",sync="s"} 30.0' in text
    assert 'employee_sync_mirror_over_max_age_ratio{sync="s"} 0.0' in text
    assert 'employee_sync_sync_credits_period{sync="s"} 30.0' in text


@pytest.mark.slow
async def test_a_sync_that_reaches_its_budget_pauses_its_sweep_with_a_reason(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    lines = list(enumerate(map(str, population_ids(50)), start=1))
    await create_sync(services, SyncRequest(name="b", source=SyncSource.IDS, lines=lines, credits_per_day=20))
    before = await collects(simulator)
    first = await tick(ctx, "b")
    assert first.last_plan["sweep"] == 20 and first.last_plan["sweep_due"] == 50  # none mirrored yet
    assert first.sweep_paused_reason is not None
    assert "credit budget reached: 20 of this sync's 20 credits per period" in first.sweep_paused_reason
    second = await tick(ctx, "b")
    assert second.last_plan["sweep"] == 0 and second.current_run_id is None
    assert second.sweep_paused_reason is not None and "resumes at" in second.sweep_paused_reason
    assert await collects(simulator) - before == 20
    fresh = await freshness_of(services.store, _budgets(ctx), second)
    assert (fresh.credits_today, fresh.credits_per_day, fresh.over_max_age) == (20, 20, 30)


def _budgets(ctx: dict[str, Any]) -> Any:
    from jobs.scheduler import budgets_of

    return budgets_of(ctx["services"])


@pytest.mark.slow
async def test_the_sweep_check_confirms_unchanged_members_and_buys_only_the_changed(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    ids = population_ids(30)
    lines = list(enumerate(map(str, ids), start=1))
    await create_sync(
        services, SyncRequest(name="c", source=SyncSource.IDS, lines=lines, max_age="2s", every="1s")
    )
    assert (await tick(ctx, "c")).last_plan["sweep"] == 30  # the first fill
    changed = ids[:3]
    await sim_admin(simulator, "POST", "mutate", {"ids": changed, "kind": "role_started"})
    await asyncio.sleep(2.5)  # every member is now past max-age
    before = await collects(simulator)
    second = await tick(ctx, "c")
    assert (second.last_plan["sweep_due"], second.last_plan["sweep_verified"]) == (3, 27)
    assert await collects(simulator) - before == 3  # the 27 unchanged cost a search, not a collect
    for employee_id in changed:
        mirrored = await services.store.employees.get(employee_id)
        upstream = await sim_admin(simulator, "GET", f"profiles/{employee_id}")
        assert mirrored is not None and mirrored["profile"]["last_updated"] == upstream["last_updated"]
    # At the tick, the 27 confirmed members count as fresh (max-age 2 s passes again soon after).
    fresh = await freshness_of(services.store, _budgets(ctx), second, now=second.last_tick_at)
    assert fresh.mirrored == 30 and fresh.over_max_age == 0


async def _searches(sim: RunningSimulator) -> int:
    return int((await sim_admin(sim, "GET", "stats"))["classes"]["search"]["accepted"])


async def tick_with_its_search_in_flight(ctx: dict[str, Any], sim: RunningSimulator) -> asyncio.Task[int]:
    """A scheduler tick started in the background, returned once its delta search reached the API
    (the simulator's latency holds the answer back)."""
    searches = await _searches(sim)
    ticking = asyncio.create_task(scheduler_tick(ctx))  # type: ignore[arg-type]
    deadline = asyncio.get_running_loop().time() + 10
    while await _searches(sim) == searches:
        assert asyncio.get_running_loop().time() < deadline, "the tick never searched"
        await asyncio.sleep(0.02)
    return ticking


async def settled_hourly_query_sync(ctx: dict[str, Any], sim: RunningSimulator) -> Sync:
    """Sync "q" (hourly, max age 1 h) after two ticks: watermark set, nothing due for an hour."""
    services: Services = ctx["services"]
    await create_sync(services, await country_sync(sim, max_age="1h", every="1h"))
    await tick(ctx, "q")
    settled = await tick(ctx, "q")
    assert settled.watermark is not None and not await services.store.syncs.due(utcnow())
    return settled


@pytest.mark.slow
async def test_a_run_now_that_lands_while_a_tick_is_planning_keeps_the_sync_due(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    # The tick's delta search may have run before what prompted the request (a change upstream):
    # moving the sync an `every` ahead would leave that change for the next scheduled tick.
    services: Services = ctx["services"]
    settled = await settled_hourly_query_sync(ctx, simulator)

    await sim_admin(simulator, "PATCH", "config", {"latency_ms_min": 300, "latency_ms_max": 300})
    await run_now(services, "q")
    planning = await tick_with_its_search_in_flight(ctx, simulator)
    await run_now(services, "q")
    await planning
    during = await get_sync(services, "q")
    assert during.last_tick_at is not None and settled.last_tick_at is not None
    assert during.last_tick_at > settled.last_tick_at
    assert [s.name for s in await services.store.syncs.due(utcnow())] == ["q"]  # still due

    await sim_admin(simulator, "PATCH", "config", {"latency_ms_min": 0, "latency_ms_max": 0})
    await scheduler_tick(ctx)  # type: ignore[arg-type]
    after = await get_sync(services, "q")
    assert after.last_tick_at is not None and after.last_tick_at > during.last_tick_at
    assert not await services.store.syncs.due(utcnow())  # the request is served: an hour ahead again


@pytest.mark.slow
async def test_a_run_now_that_lands_while_a_tick_is_failing_is_kept_not_put_off_by_the_retry_delay(
    ctx: dict[str, Any], simulator: RunningSimulator
) -> None:
    services: Services = ctx["services"]
    await settled_hourly_query_sync(ctx, simulator)

    # Every request now fails with a 503 after 300 ms: the tick's delta search fails.
    await sim_admin(simulator, "PATCH", "config", {"latency_ms_min": 300, "latency_ms_max": 300})
    await sim_admin(simulator, "PATCH", "config", {"error_rate_5xx": 1.0})
    await run_now(services, "q")
    failing = await tick_with_its_search_in_flight(ctx, simulator)
    await run_now(services, "q")  # asked while the failing search is in flight
    await failing
    failed = await get_sync(services, "q")
    assert "error" in failed.last_plan
    assert [s.name for s in await services.store.syncs.due(utcnow())] == ["q"]  # not 30 s ahead

    await sim_admin(simulator, "PATCH", "config", {"error_rate_5xx": 0.0, "latency_ms_max": 0})
    await scheduler_tick(ctx)  # type: ignore[arg-type]
    served = await get_sync(services, "q")
    assert "error" not in served.last_plan
    assert not await services.store.syncs.due(utcnow())  # the request is served: an hour ahead again
