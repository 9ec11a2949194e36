"""The change feed: events from the sink, their order, filters and cursor paging while writers write.

Real MongoDB wire server; the events come from real sink upserts (the path every collect takes).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from config import Settings
from jobs.changes import read_changes
from tests.conftest import opened_services, with_overrides
from worker.runtime import Services
from worker.store.changes import ChangeFeed

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
DEADLINE_S = 60.0


def profile(employee_id: int, version: int, *, open_role: bool = True) -> dict[str, Any]:
    """A profile whose current role is `Role <version>` at company `version`."""
    old = {
        "company_id": 1,
        "company_name": "Old",
        "title": "Before",
        "date_from": "2020-01",
        "date_to": "2022-01",
    }
    current = {
        "company_id": 100 + version,
        "company_name": f"Co {version}",
        "title": f"Role {version}",
        "date_from": f"2023-{version % 12 + 1:02d}",
        "date_to": None if open_role else "2026-10",
    }
    return {"id": employee_id, "headline": f"v{version}", "experience": [current, old]}


@pytest.fixture
def feed_settings(settings: Settings) -> Settings:
    return with_overrides(settings, changes_settle_s=0.3)


@pytest.fixture
async def feed_services(feed_settings: Settings) -> AsyncIterator[Services]:
    async with opened_services(feed_settings) as opened:
        yield opened


async def write_versions(services: Services, employee_id: int, versions: int, run_id: str = "r") -> None:
    sink = services.store.employees
    for version in range(versions + 1):
        when = T0 + timedelta(minutes=version)
        await sink.upsert(employee_id, profile(employee_id, version), run_id=run_id, fetched_at=when)
        await asyncio.sleep(random.uniform(0, 0.003))


async def settled(services: Services) -> None:
    await asyncio.sleep(services.settings.changes_settle_s + 0.05)


@pytest.mark.slow
async def test_each_change_is_one_event_with_its_role_events(feed_services: Services) -> None:
    sink = feed_services.store.employees
    await sink.upsert(7, profile(7, 1), run_id="r", fetched_at=T0)
    await sink.upsert(7, profile(7, 2), run_id="r", fetched_at=T0 + timedelta(hours=1))
    await sink.upsert(7, profile(7, 2, open_role=False), run_id="r", fetched_at=T0 + timedelta(hours=2))
    await settled(feed_services)

    page = await read_changes(feed_services)

    first, second = page.changes
    assert (first["employee_id"], first["source"], first["fields"]) == (
        7,
        "collect",
        ["experience", "headline"],
    )
    assert [e["type"] for e in first["events"]] == ["role_ended", "role_started"]
    assert first["events"][1]["title"] == "Role 2" and first["events"][1]["company_id"] == 102
    assert [e["type"] for e in second["events"]] == ["role_ended"]
    assert second["events"][0]["date_to"] == "2026-10"
    assert first["id"] < second["id"] and page.has_more is False
    only_ended = await read_changes(feed_services, event_type="role_ended", since=T0 + timedelta(minutes=90))
    assert [e["id"] for e in only_ended.changes] == [second["id"]]
    assert (await read_changes(feed_services, employee_id=8)).changes == []


async def test_a_page_stops_before_an_event_that_has_not_settled(feed_services: Services) -> None:
    sink = feed_services.store.employees
    await sink.upsert(1, profile(1, 1), run_id="r", fetched_at=T0)
    await sink.upsert(1, profile(1, 2), run_id="r", fetched_at=T0 + timedelta(hours=1))

    fresh = await read_changes(feed_services)
    assert (fresh.changes, fresh.has_more) == ([], True)  # too young: a lower number may be landing
    await settled(feed_services)
    later = await read_changes(feed_services, cursor=fresh.next_cursor)
    assert [e["employee_id"] for e in later.changes] == [1]


class SlowInsertFeed(ChangeFeed):
    """Fault injection: a writer stalls between allocating its number and inserting (a GC pause, a
    slow network), so later numbers land first. Everything else is the real feed."""

    async def _allocate(self) -> int:
        seq = await super()._allocate()
        await asyncio.sleep(random.uniform(0.0, 0.15))
        return seq


@pytest.mark.slow
async def test_paging_never_skips_or_repeats_while_events_arrive(
    feed_services: Services, feed_settings: Settings
) -> None:
    store = feed_services.store
    store.changes.__class__ = SlowInsertFeed  # the sink writes through this very object
    employees, versions = list(range(1, 13)), 8
    writers = asyncio.gather(*(write_versions(feed_services, e, versions) for e in employees))
    seen: list[int] = []
    cursor: str | None = None
    async with asyncio.timeout(DEADLINE_S):
        while True:
            page = await read_changes(feed_services, limit=7, cursor=cursor)
            seen += [event["id"] for event in page.changes]
            cursor = page.next_cursor
            if writers.done() and not page.has_more and len(seen) >= len(employees) * versions:
                break
            await asyncio.sleep(0.01)
    await writers
    stored = [int(doc["_id"]) for doc in await store.changes.of_employee()]
    assert len(stored) == len(employees) * versions
    assert seen == sorted(stored)  # every event once, in order, none skipped, none repeated


@pytest.mark.slow
async def test_the_feed_over_http_pages_with_its_cursor(
    feed_services: Services, feed_settings: Settings
) -> None:
    for employee_id in (1, 2, 3):
        await write_versions(feed_services, employee_id, 2)
    await settled(feed_services)
    client = TestClient(TestServer(create_app(feed_settings, feed_services, insecure=True)))
    await client.start_server()
    try:
        got: list[dict[str, Any]] = []
        url = "/v1/changes?limit=4"
        while True:
            async with client.get(url) as resp:
                assert resp.status == 200
                body = await resp.json()
            got += body["changes"]
            if not body["has_more"]:
                break
            url = f"/v1/changes?limit=4&cursor={body['next_cursor']}"
        assert [e["employee_id"] for e in got] == [1, 1, 2, 2, 3, 3]
        async with client.get("/v1/changes?employee_id=2&type=role_started") as resp:
            assert [e["employee_id"] for e in (await resp.json())["changes"]] == [2, 2]
        for bad in ("type=promoted", "cursor=zzz", "limit=0", "since=yesterday", "colour=red"):
            async with client.get(f"/v1/changes?{bad}") as resp:
                assert resp.status == 400, bad
    finally:
        await client.close()
