"""The MongoDB sink: idempotent, change-detecting, race-safe, never deleting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from config import Settings
from worker.runtime import Services
from worker.store import MongoStore, SinkOutcome

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def profile(employee_id: int = 1001, title: str = "Engineer") -> dict[str, Any]:
    return {
        "id": employee_id,
        "full_name": "Ada Lovelace",
        "job_title": title,
        "shorthand_names": [f"ada-{employee_id}"],
        "experience": [{"title": title, "company_name": "Analytical Engines", "date_to": None}],
    }


async def test_first_write_inserts_and_replay_changes_nothing_but_synced_at(services: Services) -> None:
    sink = services.store.employees
    assert await sink.upsert(1001, profile(), run_id="r1", fetched_at=T0) is SinkOutcome.INSERTED
    later = T0 + timedelta(hours=1)
    assert await sink.upsert(1001, profile(), run_id="r2", fetched_at=later) is SinkOutcome.UNCHANGED

    doc = await sink.get(1001)
    assert doc is not None
    assert doc["profile"] == profile()
    assert doc["sync"]["synced_at"] == later
    assert doc["sync"]["changed_at"] == T0
    assert doc["sync"]["first_seen_at"] == T0
    assert await sink.count() == 1


async def test_a_real_change_is_detected_and_recorded(services: Services) -> None:
    sink = services.store.employees
    await sink.upsert(1001, profile(), run_id="r1", fetched_at=T0)
    later = T0 + timedelta(days=1)
    outcome = await sink.upsert(1001, profile(title="CTO"), run_id="r2", fetched_at=later)

    assert outcome is SinkOutcome.CHANGED
    doc = await sink.get(1001)
    assert doc is not None
    assert doc["profile"]["job_title"] == "CTO"
    assert doc["sync"]["changed_at"] == later
    changes = await services.store.employees.changes_of(1001)
    assert len(changes) == 1
    assert changes[0]["fields"] == ["experience", "job_title"]
    assert changes[0]["run_id"] == "r2"


async def test_key_order_does_not_count_as_a_change(services: Services) -> None:
    sink = services.store.employees
    original = profile()
    reordered = dict(reversed(list(original.items())))
    await sink.upsert(1001, original, run_id="r1", fetched_at=T0)
    assert await sink.upsert(1001, reordered, run_id="r1", fetched_at=T0) is SinkOutcome.UNCHANGED


async def test_concurrent_upserts_of_one_new_id_make_one_document(settings: Settings) -> None:
    # Separate clients, as separate worker processes would have.
    stores = [MongoStore.open(settings.mongodb_url, settings.mongodb_database) for _ in range(8)]
    try:
        outcomes = await asyncio.gather(
            *(s.employees.upsert(2002, profile(2002), run_id="race", fetched_at=T0) for s in stores)
        )
        assert outcomes.count(SinkOutcome.INSERTED) == 1
        assert outcomes.count(SinkOutcome.UNCHANGED) == 7
        assert await stores[0].employees.mirrored_ids() == {2002}
    finally:
        await stores[0].drop_database()
        for s in stores:
            await s.close()


async def test_concurrent_different_versions_end_with_one_of_them_stored(settings: Settings) -> None:
    stores = [MongoStore.open(settings.mongodb_url, settings.mongodb_database) for _ in range(4)]
    try:
        versions = [profile(3003, title=f"Title {n}") for n in range(4)]
        outcomes = await asyncio.gather(
            *(
                s.employees.upsert(3003, v, run_id="race", fetched_at=T0)
                for s, v in zip(stores, versions, strict=True)
            )
        )
        assert outcomes.count(SinkOutcome.INSERTED) == 1
        doc = await stores[0].employees.get(3003)
        assert doc is not None and doc["profile"] in versions
        assert await stores[0].employees.mirrored_ids() == {3003}
    finally:
        await stores[0].drop_database()
        for s in stores:
            await s.close()


async def test_tombstone_keeps_the_document_and_a_later_200_revives_it(services: Services) -> None:
    sink = services.store.employees
    await sink.upsert(1001, profile(), run_id="r1", fetched_at=T0)
    gone = T0 + timedelta(days=2)
    assert await sink.tombstone(1001, run_id="r2", now=gone) is True
    assert await sink.tombstone(1001, run_id="r3", now=gone) is False  # already a tombstone

    doc = await sink.get(1001)
    assert doc is not None
    assert doc["sync"]["deleted_at"] == gone
    assert doc["profile"] == profile()  # nothing removed

    back = gone + timedelta(days=1)
    assert await sink.upsert(1001, profile(), run_id="r4", fetched_at=back) is SinkOutcome.CHANGED
    doc = await sink.get(1001)
    assert doc is not None and doc["sync"]["deleted_at"] is None


async def test_tombstone_of_an_unknown_id_creates_nothing(services: Services) -> None:
    assert await services.store.employees.tombstone(4242, run_id="r", now=T0) is False
    assert await services.store.employees.count() == 0
