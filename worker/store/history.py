"""Each profile's sync history: every collect (changed or not) and every "not found", newest kept.

One document per employee (`_id` = the employee id) holding its last `HISTORY_KEPT` events, so a
profile's page is one read by `_id`, and a collect adds an update to an existing document rather
than a new one (the mirror's own document count stays the only thing that grows with syncs).
Change records (which fields differed) stay in `changes`, written by the sink.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from worker.store.base import Doc, translated

HISTORY_KEPT = 50


class SyncHistory:
    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._collection = collection

    async def record(self, employee_id: int, *, run_id: str, outcome: str, by: str, at: datetime) -> None:
        """`by`: how the run asked for it (`id` or `name`); `outcome`: inserted, changed, unchanged,
        not_found."""
        event = {"at": at, "run_id": run_id, "outcome": outcome, "by": by}
        async with translated("record sync history"):
            await self._collection.update_one(
                {"_id": employee_id},
                {
                    "$push": {"events": {"$each": [event], "$slice": -HISTORY_KEPT}},
                    "$inc": {"collects": 1},
                },
                upsert=True,
            )

    async def of(self, employee_id: int) -> tuple[list[dict[str, Any]], int]:
        """The kept events, newest first, and how many collects there were in all."""
        async with translated("read sync history"):
            doc = await self._collection.find_one({"_id": employee_id})
        if doc is None:
            return [], 0
        events = [dict(e) for e in doc.get("events") or []]
        return events[::-1], int(doc.get("collects") or len(events))
