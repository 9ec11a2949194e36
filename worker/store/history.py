"""Each profile's sync history: every collect (changed or not) and every "not found", newest kept.

Kept in the employee's own document (`history`: the last `HISTORY_KEPT` events, `collects`: how many
in all), pushed by the same update that writes the collect (`worker.store.employees`), so recording
it costs no extra round trip and no extra document. A profile's page is then one read by `_id`.
Change records (which fields differed) stay in `changes`, written by the sink.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from worker.store.base import Doc, translated

HISTORY_KEPT = 50
HISTORY = "history"
COLLECTS = "collects"


def event(outcome: str, run_id: str, at: datetime, by: str | None) -> Doc:
    """`outcome`: inserted, changed, unchanged or not_found; `by`: how the run asked (`id`/`name`)."""
    return {"at": at, "run_id": run_id, "outcome": outcome, "by": by}


def push(entry: Doc) -> Doc:
    """The update operators that add one event (combine with the write's own `$set`)."""
    return {"$push": {HISTORY: {"$each": [entry], "$slice": -HISTORY_KEPT}}, "$inc": {COLLECTS: 1}}


class SyncHistory:
    def __init__(self, employees: AsyncCollection[Doc]) -> None:
        self._employees = employees

    async def of(self, employee_id: int) -> tuple[list[dict[str, Any]], int]:
        """The kept events, newest first, and how many collects there were in all."""
        async with translated("read sync history"):
            doc = await self._employees.find_one({"_id": employee_id}, {HISTORY: True, COLLECTS: True})
        if doc is None:
            return [], 0
        events = [dict(e) for e in doc.get(HISTORY) or []]
        return events[::-1], int(doc.get(COLLECTS) or len(events))
