"""The sink: idempotent upserts of profiles into `employees`, with change detection by content hash.

Document shape: `{_id: <employee id>, profile: {...as the API returned it...}, sync: {hash, synced_at,
changed_at, first_seen_at, deleted_at, run_id}, history: [...last 50 collects], collects: n}`
(the sync history, `worker.store.history`, pushed by the same write). `synced_at` is when the
written profile was *fetched* (not when it was written): a write of an older fetch than the stored
one is skipped, so a late writer (a stashed profile, a slow job) never replaces a newer profile.
"Changed" is decided by comparing a SHA-256 of the canonical JSON we store ourselves, never by
`modified_count` (servers disagree on it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import InsertOne, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from worker.errors import StoreUnavailableError
from worker.store.base import Doc, translated
from worker.store.changes import ChangeFeed
from worker.store.history import event, push

# A duplicate-key race can only repeat if other writers keep changing the same profile meanwhile.
_MAX_RACE_ATTEMPTS = 4


class SinkOutcome(StrEnum):
    INSERTED = "inserted"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


def content_hash(profile: dict[str, Any]) -> str:
    canonical = json.dumps(profile, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sync_fields(digest: str, run_id: str, now: datetime) -> dict[str, Any]:
    return {
        "hash": digest,
        "synced_at": now,
        "changed_at": now,
        "run_id": run_id,
        "deleted_at": None,
    }


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


class EmployeeSink:
    def __init__(self, employees: AsyncCollection[Doc], changes: ChangeFeed) -> None:
        self._employees = employees
        self._feed = changes

    async def upsert(
        self,
        employee_id: int,
        profile: dict[str, Any],
        *,
        run_id: str,
        fetched_at: datetime,
        by: str | None = None,
    ) -> SinkOutcome:
        """Write one profile. Replaying the same profile only moves `synced_at`. Each write also adds
        the collect to the profile's sync history (`worker.store.history`; `by`: `id` or `name`).

        Read the stored hash by `_id`, then write with a compare-and-set on that hash (or an insert
        that fails on a duplicate `_id`), so concurrent writers of one id never lose an update or
        create a second document. Single-document operations by `_id` only: cheap on every server.
        """
        digest, now = content_hash(profile), fetched_at
        for _ in range(_MAX_RACE_ATTEMPTS):
            current = await self._read_sync(employee_id)
            if current is None:
                if await self._insert(employee_id, profile, digest, run_id, now, by):
                    return SinkOutcome.INSERTED
                continue  # another worker inserted it first: compare against theirs
            stored_at = current.get("synced_at")
            if stored_at is not None and stored_at > now:
                return SinkOutcome.UNCHANGED  # a newer fetch is already stored: ours is stale
            if current.get("hash") == digest and current.get("deleted_at") is None:
                if await self._touch(employee_id, digest, run_id, now, by):
                    return SinkOutcome.UNCHANGED
                continue  # tombstoned or replaced meanwhile: compare again
            before = await self._replace_if(
                employee_id, current.get("hash"), profile, digest, run_id, now, by
            )
            if before is not None:
                await self._record_change(employee_id, before, profile, digest, run_id, now)
                return SinkOutcome.CHANGED
        return SinkOutcome.UNCHANGED

    async def upsert_many(
        self, profiles: Sequence[dict[str, Any]], *, run_id: str, fetched_at: datetime
    ) -> list[tuple[int, SinkOutcome]]:
        """Write a batch of profiles with the rules of `upsert`, in a few round trips.

        One `$in` read of the stored hashes, then one unordered `bulk_write`: insert the new,
        compare-and-set the changed on their stored hash, touch the unchanged (only if still live
        and unchanged). Whatever the batch write could not settle (another writer raced us: a
        duplicate key, a hash that moved) goes through `upsert` one by one, so the outcome of
        every profile is exactly what `upsert` would have said. Returns (id, outcome) per
        distinct id, in first-seen order.
        """
        now = fetched_at.replace(microsecond=fetched_at.microsecond // 1000 * 1000)  # BSON keeps ms
        batch = {int(p["id"]): p for p in reversed(profiles)}  # first occurrence wins
        order = list(reversed(batch))
        current = await self._read_syncs(order)
        plan = _BatchPlan()
        for employee_id in order:
            plan.add(employee_id, batch[employee_id], current.get(employee_id), run_id, now)
        settled = await self._write_plan(plan)
        outcomes = dict(plan.final)
        for employee_id, outcome in plan.pending.items():
            if employee_id in settled:
                outcomes[employee_id] = outcome
            else:  # raced: decide it the careful way
                outcomes[employee_id] = await self.upsert(
                    employee_id, batch[employee_id], run_id=run_id, fetched_at=now
                )
        await self._record_changes(plan, settled, batch, run_id, now)
        return [(employee_id, outcomes[employee_id]) for employee_id in order]

    async def _read_syncs(self, employee_ids: Sequence[int]) -> dict[int, Doc]:
        projection = {"sync.hash": True, "sync.deleted_at": True, "sync.synced_at": True, "profile": True}
        async with translated("read employees"):
            cursor = self._employees.find({"_id": {"$in": list(employee_ids)}}, projection)
            return {int(doc["_id"]): doc async for doc in cursor}

    async def _write_plan(self, plan: _BatchPlan) -> set[int]:
        """Run the batch's writes; returns the ids whose write took effect as planned."""
        if not plan.ops:
            return set()
        failed_inserts: set[int] = set()
        try:
            async with translated("write employees"):
                result = await self._employees.bulk_write(plan.ops, ordered=False)
            matched = result.matched_count
        except BulkWriteError as exc:
            details = exc.details
            failed_inserts = {plan.op_ids[e["index"]] for e in details.get("writeErrors", [])}
            if any(e.get("code") != 11000 for e in details.get("writeErrors", [])):
                raise StoreUnavailableError(f"MongoDB write employees: {exc}") from exc
            matched = int(details.get("nMatched", 0))
        settled = {i for i in plan.inserts if i not in failed_inserts}
        if matched == len(plan.conditional):
            return settled | set(plan.conditional)
        # Some conditional writes matched nothing: read back which ones took effect.
        current = await self._read_syncs(list(plan.conditional))
        for employee_id, digest in plan.conditional.items():
            sync = (current.get(employee_id) or {}).get("sync") or {}
            if sync.get("hash") == digest and sync.get("synced_at") == plan.now:
                settled.add(employee_id)
        return settled

    async def _record_changes(
        self, plan: _BatchPlan, settled: set[int], batch: dict[int, Doc], run_id: str, now: datetime
    ) -> None:
        """Each change a batch made is a change-feed event, exactly as a single upsert's is."""
        for employee_id, before in plan.changed_before.items():
            if employee_id in settled:
                profile = batch[employee_id]
                await self._record_change(employee_id, before, profile, content_hash(profile), run_id, now)

    async def _read_sync(self, employee_id: int) -> Doc | None:
        async with translated("read employee"):
            doc = await self._employees.find_one(
                {"_id": employee_id}, {"sync.hash": True, "sync.deleted_at": True, "sync.synced_at": True}
            )
        return None if doc is None else dict(doc.get("sync") or {})

    async def _insert(
        self,
        employee_id: int,
        profile: dict[str, Any],
        digest: str,
        run_id: str,
        now: datetime,
        by: str | None,
    ) -> bool:
        sync = {**_sync_fields(digest, run_id, now), "first_seen_at": now}
        history = [event(SinkOutcome.INSERTED.value, run_id, now, by)]
        doc = {"_id": employee_id, "profile": profile, "sync": sync, "history": history, "collects": 1}
        try:
            async with translated("insert employee"):
                await self._employees.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def _touch(self, employee_id: int, digest: str, run_id: str, now: datetime, by: str | None) -> bool:
        """Move synced_at of a live, unchanged profile (conditional, so it never revives a tombstone)."""
        async with translated("touch employee"):
            result = await self._employees.update_one(
                {"_id": employee_id, "sync.hash": digest, "sync.deleted_at": None},
                {
                    "$set": {"sync.synced_at": now, "sync.run_id": run_id},
                    **push(event(SinkOutcome.UNCHANGED.value, run_id, now, by)),
                },
            )
        return result.matched_count == 1

    async def _replace_if(
        self,
        employee_id: int,
        expected_hash: str | None,
        profile: dict[str, Any],
        digest: str,
        run_id: str,
        now: datetime,
        by: str | None,
    ) -> Doc | None:
        """Compare-and-set on the stored hash; returns the document before, or None if it moved."""
        fields = {f"sync.{k}": v for k, v in _sync_fields(digest, run_id, now).items()}
        async with translated("update employee"):
            return await self._employees.find_one_and_update(
                {"_id": employee_id, "sync.hash": expected_hash},
                {
                    "$set": {"profile": profile, **fields},
                    **push(event(SinkOutcome.CHANGED.value, run_id, now, by)),
                },
                projection={"profile": True, "sync.hash": True},
                return_document=ReturnDocument.BEFORE,
            )

    async def _record_change(
        self,
        employee_id: int,
        before: Doc,
        profile: dict[str, Any],
        digest: str,
        run_id: str,
        now: datetime,
    ) -> None:
        """Every detected change, from any path, becomes a change-feed event (worker.store.changes)."""
        await self._feed.record(
            employee_id=employee_id,
            run_id=run_id,
            before=before.get("profile") or {},
            after=profile,
            detected_at=now,
            old_hash=(before.get("sync") or {}).get("hash"),
            new_hash=digest,
        )

    async def tombstone(self, employee_id: int, *, run_id: str, now: datetime) -> bool:
        """Mark a known profile deleted upstream; the document is kept. True if it was live before.
        Either way a mirrored profile's history gets the `not_found` collect."""
        history = push(event("not_found", run_id, now, "id"))
        async with translated("tombstone employee"):
            result = await self._employees.update_one(
                {"_id": employee_id, "sync.deleted_at": None},
                {"$set": {"sync.deleted_at": now, "sync.synced_at": now, "sync.run_id": run_id}, **history},
            )
            if result.matched_count == 1:
                return True
            await self._employees.update_one({"_id": employee_id}, history)  # already a tombstone
        return False

    async def fresh_ids(self, employee_ids: Sequence[int], *, synced_since: datetime) -> set[int]:
        """The ids among these whose live profile was synced at or after `synced_since`."""
        if not employee_ids:
            return set()
        query = {
            "_id": {"$in": list(employee_ids)},
            "sync.synced_at": {"$gte": synced_since},
            "sync.deleted_at": None,
        }
        async with translated("read fresh employees"):
            return {int(doc["_id"]) async for doc in self._employees.find(query, {"_id": True})}

    async def synced_by_run(self, employee_ids: Sequence[int], run_id: str) -> set[int]:
        """The ids among these whose last sync was by this run (a resume does not redo them)."""
        if not employee_ids:
            return set()
        query = {"_id": {"$in": list(employee_ids)}, "sync.run_id": run_id, "sync.deleted_at": None}
        async with translated("read synced employees"):
            return {int(doc["_id"]) async for doc in self._employees.find(query, {"_id": True})}

    async def get(self, employee_id: int) -> Doc | None:
        async with translated("read employee"):
            return await self._employees.find_one({"_id": employee_id})

    async def count(self) -> int:
        async with translated("count employees"):
            return await self._employees.count_documents({})

    async def mirrored_ids(self) -> set[int]:
        """Every mirrored id (tests, the demo and small benchmarks; not for a production mirror)."""
        async with translated("list employees"):
            return {int(doc["_id"]) async for doc in self._employees.find({}, {"_id": True})}

    async def changes_of(self, employee_id: int | None = None) -> list[Doc]:
        """Change records, oldest first (all of them when no id is given)."""
        return await self._feed.of_employee(employee_id)

    # --- staleness (syncs): over a given set of ids, so each sync sees only its members ---------

    async def sync_times(self, employee_ids: Sequence[int]) -> dict[int, datetime]:
        """`synced_at` of these ids' live profiles (ids not mirrored or tombstoned are absent)."""
        if not employee_ids:
            return {}
        query = {"_id": {"$in": list(employee_ids)}, "sync.deleted_at": None}
        async with translated("read employee sync times"):
            return {
                int(doc["_id"]): doc["sync"]["synced_at"]
                async for doc in self._employees.find(query, {"sync.synced_at": True})
            }

    async def last_updated_of(self, employee_ids: Sequence[int]) -> dict[int, str | None]:
        """The mirrored profile's own `last_updated` for these ids (absent: not mirrored)."""
        if not employee_ids:
            return {}
        async with translated("read employee last_updated"):
            cursor = self._employees.find(
                {"_id": {"$in": list(employee_ids)}}, {"profile.last_updated": True}
            )
            return {int(doc["_id"]): (doc.get("profile") or {}).get("last_updated") async for doc in cursor}

    async def ids_for_names(self, names: Sequence[str]) -> dict[str, int]:
        """Shorthand names → the mirrored id holding each (names the mirror does not hold are absent)."""
        if not names:
            return {}
        found: dict[str, int] = {}
        wanted = set(names)
        query = {"profile.shorthand_names": {"$in": list(names)}}
        async with translated("read employees by name"):
            async for doc in self._employees.find(query, {"profile.shorthand_names": True}):
                for name in (doc.get("profile") or {}).get("shorthand_names") or []:
                    if name in wanted:
                        found[name] = int(doc["_id"])
        return found


class _BatchPlan:
    """What `upsert_many` will write, decided from one read of the stored hashes."""

    def __init__(self) -> None:
        self.ops: list[InsertOne[Doc] | UpdateOne] = []
        self.op_ids: list[int] = []  # employee id of each op, by index
        self.inserts: list[int] = []
        self.conditional: dict[int, str] = {}  # id -> new hash: CAS updates and touches
        self.final: dict[int, SinkOutcome] = {}  # decided without a write (a stale fetch)
        self.pending: dict[int, SinkOutcome] = {}  # the outcome if its write takes effect
        self.changed_before: dict[int, Doc] = {}
        self.now: datetime | None = None

    def add(self, employee_id: int, profile: Doc, stored: Doc | None, run_id: str, now: datetime) -> None:
        self.now = now
        digest = content_hash(profile)
        sync = None if stored is None else dict(stored.get("sync") or {})
        if sync is None:
            doc = {
                "_id": employee_id,
                "profile": profile,
                "sync": {**_sync_fields(digest, run_id, now), "first_seen_at": now},
            }
            self._op(employee_id, InsertOne(doc))
            self.inserts.append(employee_id)
            self.pending[employee_id] = SinkOutcome.INSERTED
            return
        stored_at = sync.get("synced_at")
        if stored_at is not None and stored_at > now:
            self.final[employee_id] = SinkOutcome.UNCHANGED  # a newer fetch is stored: ours is stale
            return
        if sync.get("hash") == digest and sync.get("deleted_at") is None:
            flt = {"_id": employee_id, "sync.hash": digest, "sync.deleted_at": None}
            self._op(employee_id, UpdateOne(flt, {"$set": {"sync.synced_at": now, "sync.run_id": run_id}}))
            self.pending[employee_id] = SinkOutcome.UNCHANGED
        else:
            fields = {f"sync.{k}": v for k, v in _sync_fields(digest, run_id, now).items()}
            flt = {"_id": employee_id, "sync.hash": sync.get("hash")}
            self._op(employee_id, UpdateOne(flt, {"$set": {"profile": profile, **fields}}))
            self.pending[employee_id] = SinkOutcome.CHANGED
            assert stored is not None
            self.changed_before[employee_id] = stored
        self.conditional[employee_id] = digest

    def _op(self, employee_id: int, op: InsertOne[Doc] | UpdateOne) -> None:
        self.ops.append(op)
        self.op_ids.append(employee_id)
