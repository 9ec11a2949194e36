"""The change feed: one event per detected change of a mirrored profile, in a stable order.

Event document: `{_id: <seq>, employee_id, detected_at, allocated_at, source, run_id, fields,
events, old_hash, new_hash, at}` (`at` = detected_at, the name the older change records used).
`events` are `worker.change_events` role events derived from the experience[] diff.

Order and paging. `_id` is a sequence number allocated from a counter document (`$inc`), so the
order is total and stable, and a cursor is simply "the last sequence number I saw". Allocation
and insert are two steps, so a reader could see seq 7 before seq 6 lands and page past it. A
**settle window** closes that gap: a page serves only events allocated at least `settle_s` ago and
stops at the first younger one. A write normally lands within milliseconds of its allocation, so
when a reader passes seq N every lower number is written or was abandoned (a writer that died
between the two steps leaves a harmless gap): no skip, no repeat. A write that lands later than
`WRITE_DEADLINE_S` after its allocation (a stalled process, an overloaded server) re-sequences its
event to a fresh number, so a reader that already passed the old number still gets it: at-least-once
in that corner (a reader may see it twice, with one id), never silently lost. Exactly-once holds
while writer/reader clock skew stays under `settle_s - WRITE_DEADLINE_S` (1.5 s by default).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from worker.change_events import diff_profiles
from worker.run_model import utcnow
from worker.store.base import Doc, translated

COUNTER_ID = "changes"
# A change-event insert gives up after this long (client-side timeout, sent to the server too).
WRITE_DEADLINE_S = 0.5
# What a run's kind says about where a change was detected.
SOURCE_OF_KIND = {"webhook": "webhook", "bulk": "bulk"}
DEFAULT_SOURCE = "collect"

KindOf = Callable[[str], Awaitable[str | None]]


def source_of(kind: str | None) -> str:
    return SOURCE_OF_KIND.get(kind or "", DEFAULT_SOURCE)


def as_event(doc: Doc) -> dict[str, Any]:
    """The public shape of one stored event (GET /v1/changes, `employee-sync changes --json`)."""
    detected = doc.get("detected_at")
    return {
        "id": int(doc["_id"]),
        "employee_id": int(doc["employee_id"]),
        "detected_at": detected.isoformat() if isinstance(detected, datetime) else detected,
        "source": doc.get("source", DEFAULT_SOURCE),
        "run_id": doc.get("run_id"),
        "fields": list(doc.get("fields") or []),
        "events": list(doc.get("events") or []),
    }


class ChangeFeed:
    def __init__(
        self, changes: AsyncCollection[Doc], counters: AsyncCollection[Doc], kind_of: KindOf
    ) -> None:
        self._changes = changes
        self._counters = counters
        self._kind_of = kind_of
        self._kinds: dict[str, str | None] = {}  # run id -> kind (a run never changes kind)

    async def record(
        self,
        *,
        employee_id: int,
        run_id: str,
        before: dict[str, Any],
        after: dict[str, Any],
        detected_at: datetime,
        old_hash: str | None,
        new_hash: str,
    ) -> int:
        """Write one change event; returns its sequence number."""
        change = diff_profiles(before, after)
        doc: Doc = {
            "employee_id": employee_id,
            "detected_at": detected_at,
            "at": detected_at,
            "source": source_of(await self._run_kind(run_id)),
            "run_id": run_id,
            "fields": sorted(change.fields),
            "events": [event.to_dict() for event in change.events],
            "old_hash": old_hash,
            "new_hash": new_hash,
        }
        started = time.monotonic()
        seq = await self._allocate()
        doc.update(_id=seq, allocated_at=utcnow())
        return await self._insert(doc, started)

    async def _insert(self, doc: Doc, started: float) -> int:
        """Insert at the allocated number, or re-sequence if the write came later than the deadline."""
        seq = int(doc["_id"])
        # No client-side timeout here: an insert abandoned half-way would lose the event (the
        # profile is already replaced, so a retry sees it unchanged). A slow one re-sequences.
        async with translated("record change"):
            await self._changes.insert_one(doc)
        if time.monotonic() - started > WRITE_DEADLINE_S:
            seq = await self._resequence(seq)
        return seq

    async def _run_kind(self, run_id: str) -> str | None:
        if run_id not in self._kinds:
            if len(self._kinds) > 10_000:
                self._kinds.clear()
            self._kinds[run_id] = await self._kind_of(run_id)
        return self._kinds[run_id]

    async def _allocate(self) -> int:
        async with translated("allocate change sequence"):
            doc = await self._counters.find_one_and_update(
                {"_id": COUNTER_ID}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
            )
        assert doc is not None
        return int(doc["seq"])

    async def _resequence(self, seq: int) -> int:
        """A late write: move the event to a fresh number, ahead of every reader's cursor."""
        async with translated("resequence change"):
            doc = await self._changes.find_one({"_id": seq})
        if doc is None:
            return seq  # the write did not land after all
        new_seq = await self._allocate()
        doc.update(_id=new_seq, allocated_at=utcnow())
        async with translated("resequence change"):
            await self._changes.insert_one(doc)
            await self._changes.delete_one({"_id": seq})
        return new_seq

    async def page(
        self,
        *,
        after_seq: int,
        limit: int,
        settle_s: float,
        since: datetime | None = None,
        employee_id: int | None = None,
        event_type: str | None = None,
        now: datetime | None = None,
    ) -> tuple[list[Doc], bool]:
        """Settled events after `after_seq`, oldest first; returns (events, more may be waiting)."""
        query: Doc = {"_id": {"$gt": after_seq}}
        if since is not None:
            query["detected_at"] = {"$gte": since}
        if employee_id is not None:
            query["employee_id"] = employee_id
        if event_type is not None:
            query["events.type"] = event_type
        horizon = (now or utcnow()) - timedelta(seconds=settle_s)
        async with translated("read changes"):
            cursor = self._changes.find(query).sort("_id", ASCENDING).limit(limit + 1)
            docs = [doc async for doc in cursor]
        served: list[Doc] = []
        for doc in docs[:limit]:
            if doc.get("allocated_at") is not None and doc["allocated_at"] > horizon:
                return served, True  # not settled yet: a lower number may still be landing
            served.append(doc)
        return served, len(docs) > limit

    async def of_employee(self, employee_id: int | None = None) -> list[Doc]:
        """Raw event documents in sequence order (all of them when no id is given; tests, small tools)."""
        query: Doc = {} if employee_id is None else {"employee_id": employee_id}
        async with translated("read changes"):
            return [doc async for doc in self._changes.find(query).sort("_id", ASCENDING)]

    async def latest_seq(self) -> int:
        async with translated("read change sequence"):
            doc = await self._counters.find_one({"_id": COUNTER_ID})
        return 0 if doc is None else int(doc["seq"])

    async def prune(self, before: datetime) -> int:
        """Retention: drop events detected before `before`. Cursors stay valid (numbers only grow)."""
        async with translated("prune changes"):
            result = await self._changes.delete_many({"detected_at": {"$lt": before}})
        return int(result.deleted_count)

    async def ensure_indexes(self) -> None:
        async with translated("create_index"):
            await self._changes.create_index([("employee_id", ASCENDING), ("_id", ASCENDING)])
            await self._changes.create_index([("detected_at", ASCENDING)])
            await self._changes.create_index([("events.type", ASCENDING), ("_id", ASCENDING)])
