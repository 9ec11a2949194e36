"""Run records, their stored inputs, and the dead-letter. Runs live in MongoDB; jobs live in Redis."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from worker.store.base import Doc, translated


class RunRecords:
    def __init__(self, runs: AsyncCollection[Doc], inputs: AsyncCollection[Doc]) -> None:
        self._runs = runs
        self._inputs = inputs

    async def insert(self, doc: Doc) -> None:
        async with translated("insert run"):
            await self._runs.insert_one(doc)

    async def save_inputs(self, run_id: str, chunks: Iterable[Sequence[str]], *, first_seq: int = 0) -> int:
        """Store a run's accepted inputs in chunk documents, so the run can be rebuilt without Redis."""
        count = 0
        for seq, items in enumerate(chunks, start=first_seq):
            chunk_id = f"{run_id}:{seq:06d}"
            doc = {"_id": chunk_id, "run_id": run_id, "seq": seq, "items": list(items)}
            # A replace, not an insert: a job that stores its page again after a crash changes nothing.
            async with translated("store run inputs"):
                await self._inputs.replace_one({"_id": chunk_id}, doc, upsert=True)
            count += 1
        return count

    async def iter_inputs(self, run_id: str) -> AsyncIterator[list[str]]:
        async with translated("read run inputs"):
            cursor = self._inputs.find({"run_id": run_id}).sort("seq", ASCENDING)
            async for doc in cursor:
                yield list(doc["items"])

    async def input_chunk(self, run_id: str, seq: int) -> list[str] | None:
        async with translated("read run inputs"):
            doc = await self._inputs.find_one({"_id": f"{run_id}:{seq:06d}"})
        return None if doc is None else list(doc["items"])

    async def feedable(self, limit: int = 100) -> list[Doc]:
        """Running runs whose inputs are not all fed yet, oldest first."""
        async with translated("list feedable runs"):
            cursor = (
                self._runs.find({"state": "running", "feed.done": {"$ne": True}})
                .sort("created_at", ASCENDING)
                .limit(limit)
            )
            return [doc async for doc in cursor]

    async def count(self, query: Doc) -> int:
        async with translated("count runs"):
            return await self._runs.count_documents(query)

    async def page(self, query: Doc, limit: int) -> list[Doc]:
        """Newest first; the caller narrows `query` with its cursor."""
        async with translated("list runs"):
            cursor = (
                self._runs.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
            )
            return [doc async for doc in cursor]

    async def get(self, run_id: str) -> Doc | None:
        async with translated("read run"):
            return await self._runs.find_one({"_id": run_id})

    async def latest(self, limit: int = 20) -> list[Doc]:
        async with translated("list runs"):
            cursor = self._runs.find({}).sort("created_at", DESCENDING).limit(limit)
            return [doc async for doc in cursor]

    async def transition(self, run_id: str, from_states: Sequence[str], fields: Doc) -> bool:
        """Compare-and-set on `state`, so two workers finishing the same run write it once."""
        async with translated("update run"):
            result = await self._runs.update_one(
                {"_id": run_id, "state": {"$in": list(from_states)}}, {"$set": fields}
            )
        return result.matched_count == 1

    async def update(self, run_id: str, fields: Doc) -> None:
        async with translated("update run"):
            await self._runs.update_one({"_id": run_id}, {"$set": fields})

    async def advance_search(self, run_id: str, page_no: int, fields: Doc) -> bool:
        """Record page `page_no` as done, once: compare-and-set on the run's next page number."""
        async with translated("advance search"):
            result = await self._runs.update_one(
                {"_id": run_id, "state": "running", "search.next_page": page_no},
                {"$set": {**fields, "search.next_page": page_no + 1}},
            )
        return result.matched_count == 1


class DeadLetters:
    """Permanent failures with their reason, one document per (run, item): replays overwrite."""

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
        async with translated("write dead-letter"):
            await self._collection.update_one(
                {"_id": f"{run_id}:{item_key}"},
                {
                    "$set": {
                        "run_id": run_id,
                        "item_key": item_key,
                        "reason": reason,
                        "error_type": error_type,
                        "status": status,
                        "attempts": attempts,
                        "at": now,
                    }
                },
                upsert=True,
            )

    async def list(
        self, run_id: str | None = None, limit: int = 100, *, reason_contains: str | None = None
    ) -> list[Doc]:
        query: dict[str, Any] = {} if run_id is None else {"run_id": run_id}
        if reason_contains:
            query["reason"] = {"$regex": re.escape(reason_contains), "$options": "i"}
        async with translated("list dead-letters"):
            cursor = self._collection.find(query).sort("at", ASCENDING).limit(limit)
            return [doc async for doc in cursor]

    async def delete(self, letter_id: str) -> None:
        async with translated("delete dead-letter"):
            await self._collection.delete_one({"_id": letter_id})

    async def count(self, run_id: str | None = None) -> int:
        query: dict[str, Any] = {} if run_id is None else {"run_id": run_id}
        async with translated("count dead-letters"):
            return await self._collection.count_documents(query)
