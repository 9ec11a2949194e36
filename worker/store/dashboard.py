"""Read-only queries behind the dashboard: lookups, dead-letter pages and summaries, mirror freshness.

Each is bounded (a page on an index that holds its sort, a limit, one count per freshness bucket on
the `sync.synced_at` index), so a dashboard refresh costs the same with 10,000 dead letters as with ten.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from worker.store.base import Doc, translated
from worker.store.deadletters import DeadLetter, from_doc

MAX_REASONS = 50


@dataclass(frozen=True, slots=True)
class LetterFilter:
    reason: str | None = None  # exact reason (the dashboard's "by reason" rows)
    run_id: str | None = None

    def query(self) -> Doc:
        query: Doc = {}
        if self.reason is not None:
            query["reason"] = self.reason
        if self.run_id is not None:
            query["run_id"] = self.run_id
        return query


class DashboardQueries:
    def __init__(self, employees: AsyncCollection[Doc], dead_letters: AsyncCollection[Doc]) -> None:
        self._employees = employees
        self._letters = dead_letters

    async def ids_by_shorthand_name(self, name: str, limit: int = 5) -> list[int]:
        """Mirrored profiles carrying this shorthand name now (names change and get reused: several)."""
        async with translated("find employee by name"):
            names = sorted({name, name.lower()})
            query = {"profile.shorthand_names": {"$in": names}}
            cursor = self._employees.find(query, {"_id": True}).limit(limit)
            return [int(doc["_id"]) async for doc in cursor]

    async def letters_page(
        self, where: LetterFilter, *, before: tuple[datetime, str] | None, limit: int
    ) -> list[DeadLetter]:
        """Newest first; `before` is the (at, id) of the last letter of the previous page."""
        query = where.query()
        if before is not None:
            at, letter_id = before
            query["$or"] = [{"at": {"$lt": at}}, {"at": at, "_id": {"$lt": letter_id}}]
        async with translated("page dead-letters"):
            cursor = self._letters.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
            return [from_doc(doc) async for doc in cursor]

    async def count_letters(self, where: LetterFilter) -> int:
        """Of one reason or run: counted on its index. All of them: from the collection's metadata
        (a count of an empty filter would read every letter, on every page)."""
        query = where.query()
        async with translated("count dead-letters"):
            if not query:
                return await self._letters.estimated_document_count()
            return await self._letters.count_documents(query)

    async def letters_by_reason(self, limit: int = MAX_REASONS) -> list[tuple[str, int]]:
        """The most frequent reasons first."""
        pipeline: list[Doc] = [
            {"$group": {"_id": "$reason", "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
            {"$limit": limit},
        ]
        async with translated("group dead-letters"):
            rows = await self._letters.aggregate(pipeline)
            return [(str(row["_id"]), int(row["n"])) async for row in rows]

    async def staleness(self, now: datetime, ages_s: Sequence[int]) -> tuple[int, list[int]]:
        """Live mirrored profiles in all, and how many were synced within each age (ascending ages)."""
        async with translated("count fresh employees"):
            total = await self._employees.count_documents({"sync.deleted_at": None})
            within = []
            for age_s in ages_s:
                since = now - timedelta(seconds=age_s)
                within.append(
                    await self._employees.count_documents(
                        {"sync.synced_at": {"$gte": since}, "sync.deleted_at": None}
                    )
                )
        return total, within
