"""The dead-letter: permanent failures with their reason, one document per (run, item)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection

from worker.store.base import Doc, translated


@dataclass(frozen=True, slots=True)
class DeadLetter:
    letter_id: str
    run_id: str
    item_key: str
    reason: str
    error_type: str
    status: int | None
    attempts: int
    at: datetime

    def as_dict(self) -> dict[str, object]:
        return {
            "_id": self.letter_id,
            "run_id": self.run_id,
            "item_key": self.item_key,
            "reason": self.reason,
            "error_type": self.error_type,
            "status": self.status,
            "attempts": self.attempts,
            "at": self.at,
        }


def from_doc(doc: Doc) -> DeadLetter:
    return DeadLetter(
        letter_id=str(doc["_id"]),
        run_id=str(doc["run_id"]),
        item_key=str(doc["item_key"]),
        reason=str(doc.get("reason", "")),
        error_type=str(doc.get("error_type", "")),
        status=doc.get("status"),
        attempts=int(doc.get("attempts") or 0),
        at=doc["at"],
    )


class DeadLetters:
    """Replays of the same (run, item) overwrite their letter."""

    def __init__(self, collection: AsyncCollection[Doc]) -> None:
        self._collection = collection

    async def put(
        self,
        *,
        run_id: str,
        item_key: str,
        reason: str,
        error_type: str,
        attempts: int,
        now: datetime,
        status: int | None = None,
    ) -> None:
        fields = {
            "run_id": run_id,
            "item_key": item_key,
            "reason": reason,
            "error_type": error_type,
            "status": status,
            "attempts": attempts,
            "at": now,
        }
        async with translated("write dead-letter"):
            await self._collection.update_one({"_id": f"{run_id}:{item_key}"}, {"$set": fields}, upsert=True)

    async def list(
        self, run_id: str | None = None, limit: int = 100, *, reason_contains: str | None = None
    ) -> list[DeadLetter]:
        query: Doc = {} if run_id is None else {"run_id": run_id}
        if reason_contains:
            query["reason"] = {"$regex": re.escape(reason_contains), "$options": "i"}
        async with translated("list dead-letters"):
            cursor = self._collection.find(query).sort("at", ASCENDING).limit(limit)
            return [from_doc(doc) async for doc in cursor]

    async def delete(self, letter_id: str) -> None:
        async with translated("delete dead-letter"):
            await self._collection.delete_one({"_id": letter_id})

    async def count(self, run_id: str | None = None) -> int:
        query: Doc = {} if run_id is None else {"run_id": run_id}
        async with translated("count dead-letters"):
            return await self._collection.count_documents(query)

    async def ensure_indexes(self) -> None:
        async with translated("create_index"):
            # The dashboard pages newest first by (at, _id), of all letters, one run or one reason:
            # with the tie-breaker in the index a page reads its 25 entries, not a sort of them all.
            await self._collection.create_index(
                [("run_id", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]
            )
            await self._collection.create_index(
                [("reason", ASCENDING), ("at", ASCENDING), ("_id", ASCENDING)]
            )
            await self._collection.create_index([("at", ASCENDING), ("_id", ASCENDING)])
