"""Sync definitions and their members in MongoDB, spoken in `worker.sync_model` terms.

`syncs`: one document per sync, `_id` = its name. `sync_members`: one document per (sync, item):
`{_id: "<name>\\x00<item key>", sync, key, employee_id, matching, joined_at, unmatched_at}`. An id
member knows its employee id from the start; a name member learns it once the mirror holds the
profile (`resolve_names`). Every scheduler write is a compare-and-set, so a tick that lost its
lease cannot write over the next holder's tick.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from worker.errors import InputError
from worker.store.base import Doc, translated
from worker.sync_model import Sync, SyncSource, SyncState

_BATCH = 1000


class SyncExistsError(InputError):
    """A sync of that name exists already."""


def _member_id(name: str, key: str) -> str:
    return f"{name}\x00{key}"


def _to_doc(sync: Sync) -> Doc:
    return {
        "_id": sync.name,
        "source": sync.source.value,
        "max_age_s": sync.max_age_s,
        "every_s": sync.every_s,
        "credits_per_day": sync.credits_per_day,
        "webhooks": sync.webhooks,
        "sweep_check": sync.sweep_check,
        "query_json": sync.query_json,
        "state": sync.state.value,
        "created_at": sync.created_at,
        "members": sync.members,
        "next_due_at": sync.next_due_at,
        "last_tick_at": sync.last_tick_at,
        "current_run_id": sync.current_run_id,
        "watermark": sync.watermark,
        "sweep_paused_reason": sync.sweep_paused_reason,
        "last_plan": dict(sync.last_plan),
        "webhook_error": sync.webhook_error,
    }


def _from_doc(doc: Doc) -> Sync:
    return Sync(
        name=str(doc["_id"]),
        source=SyncSource(doc["source"]),
        max_age_s=float(doc["max_age_s"]),
        every_s=float(doc["every_s"]),
        credits_per_day=doc.get("credits_per_day"),
        webhooks=bool(doc.get("webhooks")),
        sweep_check=bool(doc.get("sweep_check", True)),
        query_json=doc.get("query_json"),
        state=SyncState(doc["state"]),
        created_at=doc["created_at"],
        members=int(doc.get("members") or 0),
        next_due_at=doc["next_due_at"],
        last_tick_at=doc.get("last_tick_at"),
        current_run_id=doc.get("current_run_id"),
        watermark=doc.get("watermark"),
        sweep_paused_reason=doc.get("sweep_paused_reason"),
        last_plan=dict(doc.get("last_plan") or {}),
        webhook_error=doc.get("webhook_error"),
    )


class SyncStore:
    def __init__(self, syncs: AsyncCollection[Doc], members: AsyncCollection[Doc]) -> None:
        self._syncs = syncs
        self._members = members

    async def ensure_indexes(self) -> None:
        async with translated("create_index"):
            await self._syncs.create_index([("state", ASCENDING), ("next_due_at", ASCENDING)])
            await self._members.create_index([("sync", ASCENDING), ("employee_id", ASCENDING)])

    # --- definitions ------------------------------------------------------------------------

    async def create(self, sync: Sync, members: Sequence[tuple[str, int | None]]) -> None:
        """Save a validated sync with its members; a name in use is refused and nothing is written."""
        sync.members = len(members)
        try:
            async with translated("insert sync"):
                await self._syncs.insert_one(_to_doc(sync))
        except DuplicateKeyError:
            raise SyncExistsError(f"a sync named {sync.name!r} exists already") from None
        await self._add_members(sync.name, members, sync.created_at)

    async def _add_members(self, name: str, members: Sequence[tuple[str, int | None]], now: datetime) -> int:
        added = 0
        for start in range(0, len(members), _BATCH):
            ops = [
                UpdateOne(
                    {"_id": _member_id(name, key)},
                    {
                        "$setOnInsert": {"sync": name, "key": key, "joined_at": now},
                        "$set": {"matching": True, "unmatched_at": None, "employee_id": employee_id},
                    },
                    upsert=True,
                )
                for key, employee_id in members[start : start + _BATCH]
            ]
            async with translated("store sync members"):
                result = await self._members.bulk_write(ops, ordered=False)
            added += result.upserted_count
        return added

    async def get(self, name: str) -> Sync | None:
        async with translated("read sync"):
            doc = await self._syncs.find_one({"_id": name})
        return None if doc is None else _from_doc(doc)

    async def list_all(self) -> list[Sync]:
        async with translated("list syncs"):
            return [_from_doc(doc) async for doc in self._syncs.find({}).sort("_id", ASCENDING)]

    async def set_state(self, name: str, state: SyncState) -> bool:
        async with translated("update sync"):
            result = await self._syncs.update_one({"_id": name}, {"$set": {"state": state.value}})
        return result.matched_count == 1

    async def delete(self, name: str) -> bool:
        """The definition and its member list go; the mirrored profiles stay."""
        async with translated("delete sync"):
            result = await self._syncs.delete_one({"_id": name})
            await self._members.delete_many({"sync": name})
        return result.deleted_count == 1

    async def record_webhook_error(self, name: str, error: str | None) -> None:
        """Why the sync's webhook subscriptions could not be made (None: they are in place)."""
        async with translated("update sync"):
            await self._syncs.update_one({"_id": name}, {"$set": {"webhook_error": error}})

    async def make_due(self, name: str, when: datetime) -> bool:
        """Due at `when`; remembered as a request, so a tick already under way keeps it (`record_tick`)."""
        fields = {"next_due_at": when, "due_requested_at": when}
        async with translated("update sync"):
            result = await self._syncs.update_one({"_id": name}, {"$set": fields})
        return result.matched_count == 1

    # --- the scheduler ----------------------------------------------------------------------

    async def due(self, now: datetime) -> list[Sync]:
        query = {"state": SyncState.ACTIVE.value, "next_due_at": {"$lte": now}}
        async with translated("list due syncs"):
            return [_from_doc(d) async for d in self._syncs.find(query).sort("next_due_at", ASCENDING)]

    async def record_tick(
        self,
        name: str,
        *,
        expected_run_id: str | None,
        run_id: str | None,
        now: datetime,
        next_due_at: datetime,
        plan: Mapping[str, Any],
        sweep_paused_reason: str | None,
    ) -> bool:
        """Link the tick's run (compare-and-set on the run it replaces) and set the next due time.

        `now` is when the tick began planning. A `make_due` after it (run now, resume) asked for a
        plan this tick may have made too early to see what prompted it (its delta search ran
        first), so the sync stays due instead of moving to `next_due_at`.
        """
        fields = {
            "current_run_id": run_id,
            "last_tick_at": now,
            "next_due_at": next_due_at,
            "last_plan": dict(plan),
            "sweep_paused_reason": sweep_paused_reason,
        }
        async with translated("update sync"):
            result = await self._syncs.update_one(
                {"_id": name, "current_run_id": expected_run_id}, {"$set": fields}
            )
            if result.matched_count == 1:
                await self._syncs.update_one(
                    {"_id": name, "due_requested_at": {"$gt": now}}, {"$set": {"next_due_at": now}}
                )
        return result.matched_count == 1

    async def advance_watermark(
        self, name: str, *, expected: str | None, new: str | None, run_id: str | None
    ) -> bool:
        """Move the watermark once the run that collected the delta committed; compare-and-set."""
        async with translated("update sync watermark"):
            result = await self._syncs.update_one(
                {"_id": name, "watermark": expected, "current_run_id": run_id},
                {"$set": {"watermark": new, "current_run_id": None}},
            )
        return result.matched_count == 1

    async def release_run(self, name: str, run_id: str) -> bool:
        async with translated("update sync"):
            result = await self._syncs.update_one(
                {"_id": name, "current_run_id": run_id}, {"$set": {"current_run_id": None}}
            )
        return result.matched_count == 1

    # --- members ----------------------------------------------------------------------------

    async def member_ids(self, name: str) -> list[int]:
        """Employee ids of the sync's matching members (name members once resolved)."""
        query = {"sync": name, "matching": True, "employee_id": {"$ne": None}}
        async with translated("read sync members"):
            return [int(d["employee_id"]) async for d in self._members.find(query, {"employee_id": True})]

    async def unresolved_keys(self, name: str) -> list[str]:
        """Member item keys with no employee id yet (names whose profile is not mirrored)."""
        query = {"sync": name, "matching": True, "employee_id": None}
        async with translated("read sync members"):
            return [str(d["key"]) async for d in self._members.find(query, {"key": True})]

    async def resolve_names(self, name: str, resolved: Mapping[str, int]) -> None:
        ops = [
            UpdateOne({"_id": _member_id(name, key)}, {"$set": {"employee_id": employee_id}})
            for key, employee_id in resolved.items()
        ]
        if ops:
            async with translated("resolve sync members"):
                await self._members.bulk_write(ops, ordered=False)

    async def add_matches(self, name: str, employee_ids: Iterable[int], now: datetime) -> int:
        """Query syncs: these ids match now (new ones join, unmatched ones match again)."""
        members = [(f"id:{i}", i) for i in employee_ids]
        added = await self._add_members(name, members, now)
        if added:
            async with translated("update sync"):
                await self._syncs.update_one({"_id": name}, {"$inc": {"members": added}})
        return added

    async def mark_unmatched(self, name: str, employee_ids: Iterable[int], now: datetime) -> int:
        """Query syncs: these members stopped matching; they are marked, never deleted."""
        keys = [_member_id(name, f"id:{i}") for i in employee_ids]
        if not keys:
            return 0
        async with translated("mark sync members"):
            result = await self._members.update_many(
                {"_id": {"$in": keys}, "matching": True}, {"$set": {"matching": False, "unmatched_at": now}}
            )
        return int(result.matched_count)

    async def verified_times(self, name: str) -> dict[int, datetime]:
        """When each member's mirrored copy was last confirmed current without a collect."""
        query = {"sync": name, "verified_at": {"$ne": None}, "employee_id": {"$ne": None}}
        async with translated("read sync members"):
            cursor = self._members.find(query, {"employee_id": True, "verified_at": True})
            return {int(d["employee_id"]): d["verified_at"] async for d in cursor}

    async def mark_verified(self, name: str, employee_ids: Sequence[int] | None, at: datetime) -> None:
        """The mirror's copy of these members (None: every matching member) is current as of `at`."""
        query: Doc = {
            "sync": name,
            "matching": True,
            "$or": [{"verified_at": None}, {"verified_at": {"$lt": at}}],
        }
        if employee_ids is not None:
            if not employee_ids:
                return
            query["_id"] = {"$in": [_member_id(name, f"id:{i}") for i in employee_ids]}
        async with translated("mark sync members verified"):
            await self._members.update_many(query, {"$set": {"verified_at": at}})

    async def count_members(self, name: str, *, matching: bool | None = None) -> int:
        query: Doc = {"sync": name}
        if matching is not None:
            query["matching"] = matching
        async with translated("count sync members"):
            return await self._members.count_documents(query)
