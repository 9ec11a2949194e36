"""EmployeeSink.upsert_many: the rules of `upsert`, a batch at a time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tests.test_sink import profile
from worker.runtime import Services
from worker.store import SinkOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)
INS, CHG, UNCH = SinkOutcome.INSERTED, SinkOutcome.CHANGED, SinkOutcome.UNCHANGED


async def test_a_batch_inserts_new_changes_changed_and_touches_unchanged(services: Services) -> None:
    sink = services.store.employees
    await sink.upsert(1, profile(1), run_id="r1", fetched_at=T0)
    await sink.upsert(2, profile(2), run_id="r1", fetched_at=T0)
    later = T0 + timedelta(days=1)
    batch = [profile(1), profile(2, title="CTO"), profile(3), profile(3)]  # 3 twice: once
    outcomes = await sink.upsert_many(batch, run_id="r2", fetched_at=later)
    assert outcomes == [(1, UNCH), (2, CHG), (3, INS)]
    one, two, three = [await sink.get(i) for i in (1, 2, 3)]
    assert one and two and three
    assert (one["sync"]["synced_at"], one["sync"]["changed_at"], one["sync"]["run_id"]) == (later, T0, "r2")
    assert (two["profile"]["job_title"], two["sync"]["changed_at"]) == ("CTO", later)
    assert three["sync"]["first_seen_at"] == later
    [change] = await sink.changes_of(2)
    assert change["fields"] == ["experience", "job_title"] and change["run_id"] == "r2"
    assert await sink.count() == 3


async def test_a_replayed_batch_changes_nothing_and_a_stale_one_is_ignored(services: Services) -> None:
    sink = services.store.employees
    later = T0 + timedelta(hours=1)
    assert await sink.upsert_many([profile(1)], run_id="r1", fetched_at=later) == [(1, INS)]
    assert await sink.upsert_many([profile(1)], run_id="r1", fetched_at=later) == [(1, UNCH)]
    stale = await sink.upsert_many([profile(1, title="old")], run_id="r0", fetched_at=T0)
    assert stale == [(1, UNCH)]
    doc = await sink.get(1)
    assert doc is not None and doc["profile"]["job_title"] == "Engineer" and not await sink.changes_of()


async def test_a_tombstone_is_revived_as_a_change_not_touched(services: Services) -> None:
    sink = services.store.employees
    await sink.upsert(1, profile(1), run_id="r1", fetched_at=T0)
    await sink.tombstone(1, run_id="r1", now=T0 + timedelta(minutes=1))
    outcomes = await sink.upsert_many([profile(1)], run_id="r2", fetched_at=T0 + timedelta(hours=1))
    assert outcomes == [(1, CHG)]  # as `upsert` says for the same profile coming back
    doc = await sink.get(1)
    assert doc is not None and doc["sync"]["deleted_at"] is None


async def test_racing_writers_of_the_same_batch_make_one_document_each(services: Services) -> None:
    sink = services.store.employees
    batch = [profile(i) for i in range(1, 21)]
    results = await asyncio.gather(
        *(sink.upsert_many(batch, run_id=f"r{n}", fetched_at=T0) for n in range(3))
    )
    assert await sink.count() == 20
    for employee_id in range(1, 21):
        outcomes = [dict(r)[employee_id] for r in results]
        assert outcomes.count(INS) == 1 and outcomes.count(CHG) == 0, outcomes  # 1 insert, rest unchanged
