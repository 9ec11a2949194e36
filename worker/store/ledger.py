"""The data-request ledger: one document per data request of a bulk run, in `data_requests`.

A bulk POST is a billing event, so its row is written *before* the POST (state `submitting`, with
the fingerprint of what it asks for) and completed with the `request_id` right after. Every state
change is a compare-and-set on `state`, so two jobs of one row (arq runs a job at least once)
cannot both submit, and a row found still `submitting` is never resubmitted. The ingest
checkpoint (records taken from each file) lives here too: a worker killed mid-file resumes there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from worker.run_model import DataRequest, DataRequestState
from worker.store.base import Doc, translated

S = DataRequestState


def row_id_of(run_id: str, seq: int) -> str:
    return f"{run_id}:{seq:05d}"


def _to_doc(row: DataRequest) -> Doc:
    return {
        "_id": row.row_id,
        "run_id": row.run_id,
        "seq": row.seq,
        "kind": row.kind,
        "fingerprint": row.fingerprint,
        "chunk_seqs": list(row.chunk_seqs),
        "query_json": row.query_json,
        "limit": row.limit,
        "state": row.state.value,
        "request_id": row.request_id,
        "error": row.error,
        "created_at": row.created_at,
        "submitting_at": row.submitting_at,
        "submitted_at": row.submitted_at,
        "ready_at": row.ready_at,
        "polls": row.polls,
        "files": list(row.files),
        "files_done": list(row.files_done),
        "file_records": {str(k): v for k, v in row.file_records.items()},
        "file_downloads": {str(k): v for k, v in row.file_downloads.items()},
        "file_corrupt": {str(k): v for k, v in row.file_corrupt.items()},
        "download_errors": row.download_errors,
        "records_ingested": row.records_ingested,
        "bytes_downloaded": row.bytes_downloaded,
    }


def _int_map(raw: object) -> dict[int, int]:
    return {int(k): int(v) for k, v in (raw or {}).items()} if isinstance(raw, dict) else {}


def _from_doc(doc: Doc) -> DataRequest:
    return DataRequest(
        row_id=str(doc["_id"]),
        run_id=str(doc["run_id"]),
        seq=int(doc["seq"]),
        kind=str(doc["kind"]),
        fingerprint=str(doc["fingerprint"]),
        chunk_seqs=[int(s) for s in doc.get("chunk_seqs") or []],
        query_json=doc.get("query_json"),
        limit=doc.get("limit"),
        state=S(doc["state"]),
        request_id=doc.get("request_id"),
        error=doc.get("error"),
        created_at=doc["created_at"],
        submitting_at=doc.get("submitting_at"),
        submitted_at=doc.get("submitted_at"),
        ready_at=doc.get("ready_at"),
        polls=int(doc.get("polls") or 0),
        files=list(doc.get("files") or []),
        files_done=[int(i) for i in doc.get("files_done") or []],
        file_records=_int_map(doc.get("file_records")),
        file_downloads=_int_map(doc.get("file_downloads")),
        file_corrupt=_int_map(doc.get("file_corrupt")),
        download_errors=int(doc.get("download_errors") or 0),
        records_ingested=int(doc.get("records_ingested") or 0),
        bytes_downloaded=int(doc.get("bytes_downloaded") or 0),
    )


# What a summary row reads: not the query (up to 15,000 characters) nor the per-file maps.
_SUMMARY_FIELDS = {
    name: True
    for name in (
        "run_id", "seq", "kind", "state", "request_id", "error", "created_at", "submitted_at",
        "ready_at", "polls", "files", "files_done", "records_ingested", "bytes_downloaded",
    )
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class DataRequestSummary:
    """A data request as the dashboard lists it: where it is, how far its ingest got."""

    row_id: str
    run_id: str
    seq: int
    kind: str
    state: DataRequestState
    request_id: str | None
    error: str | None
    created_at: datetime
    submitted_at: datetime | None
    ready_at: datetime | None
    polls: int
    files_total: int
    files_done: int
    records_ingested: int
    bytes_downloaded: int


def _summary(doc: Doc) -> DataRequestSummary:
    return DataRequestSummary(
        row_id=str(doc["_id"]),
        run_id=str(doc["run_id"]),
        seq=int(doc["seq"]),
        kind=str(doc["kind"]),
        state=S(doc["state"]),
        request_id=doc.get("request_id"),
        error=doc.get("error"),
        created_at=doc["created_at"],
        submitted_at=doc.get("submitted_at"),
        ready_at=doc.get("ready_at"),
        polls=int(doc.get("polls") or 0),
        files_total=len(doc.get("files") or []),
        files_done=len(set(doc.get("files_done") or [])),
        records_ingested=int(doc.get("records_ingested") or 0),
        bytes_downloaded=int(doc.get("bytes_downloaded") or 0),
    )


def summary_of(row: DataRequest) -> DataRequestSummary:
    return DataRequestSummary(
        row_id=row.row_id, run_id=row.run_id, seq=row.seq, kind=row.kind, state=row.state,
        request_id=row.request_id, error=row.error, created_at=row.created_at,
        submitted_at=row.submitted_at, ready_at=row.ready_at, polls=row.polls,
        files_total=len(row.files), files_done=len(set(row.files_done)),
        records_ingested=row.records_ingested, bytes_downloaded=row.bytes_downloaded,
    )  # fmt: skip


class DataRequestLedger:
    def __init__(self, rows: AsyncCollection[Doc]) -> None:
        self._rows = rows

    async def ensure_indexes(self) -> None:
        async with translated("create_index"):
            await self._rows.create_index([("run_id", ASCENDING), ("seq", ASCENDING)])
            await self._rows.create_index([("state", ASCENDING)])
            # The dashboard's newest-first pages and its search by the upstream's id.
            await self._rows.create_index([("created_at", ASCENDING), ("_id", ASCENDING)])
            await self._rows.create_index([("request_id", ASCENDING)])

    async def plan(self, row: DataRequest) -> DataRequest:
        """Add a planned row unless it exists (planning again after a crash changes nothing)."""
        doc = _to_doc(row)
        async with translated("plan data request"):
            await self._rows.update_one({"_id": row.row_id}, {"$setOnInsert": doc}, upsert=True)
            stored = await self._rows.find_one({"_id": row.row_id})
        assert stored is not None
        return _from_doc(stored)

    async def get(self, row_id: str) -> DataRequest | None:
        async with translated("read data request"):
            doc = await self._rows.find_one({"_id": row_id})
        return None if doc is None else _from_doc(doc)

    async def of_run(self, run_id: str) -> list[DataRequest]:
        async with translated("read data requests"):
            cursor = self._rows.find({"run_id": run_id}).sort("seq", ASCENDING)
            return [_from_doc(doc) async for doc in cursor]

    async def _move(self, row_id: str, source: Sequence[S], fields: Doc, inc: Doc | None = None) -> bool:
        update: Doc = {"$set": fields}
        if inc:
            update["$inc"] = inc
        async with translated("update data request"):
            result = await self._rows.update_one(
                {"_id": row_id, "state": {"$in": [s.value for s in source]}}, update
            )
        return result.matched_count == 1

    # --- the submit: before and after the billing event -----------------------------------

    async def begin_submit(self, row_id: str, now: datetime) -> bool:
        """planned → submitting, written before the POST. False: another job has it."""
        return await self._move(row_id, [S.PLANNED], {"state": S.SUBMITTING.value, "submitting_at": now})

    async def submitted(self, row_id: str, request_id: str, now: datetime) -> bool:
        fields = {"state": S.SUBMITTED.value, "request_id": request_id, "submitted_at": now}
        return await self._move(row_id, [S.SUBMITTING], fields)

    async def not_submitted(self, row_id: str) -> bool:
        """submitting → planned: the answer proves no data request was created (nothing billed)."""
        return await self._move(row_id, [S.SUBMITTING], {"state": S.PLANNED.value, "submitting_at": None})

    async def unknown(self, row_id: str, reason: str) -> bool:
        """submitting → unknown: the POST may have created (and billed) a request we cannot name."""
        return await self._move(row_id, [S.SUBMITTING], {"state": S.UNKNOWN.value, "error": reason})

    # --- polling, ingest, the end -----------------------------------------------------------

    async def count_poll(self, row_id: str) -> None:
        await self._move(row_id, [S.SUBMITTED], {}, {"polls": 1})

    async def ready(self, row_id: str, files: Sequence[str], now: datetime) -> bool:
        fields = {"state": S.READY.value, "files": list(files), "ready_at": now}
        return await self._move(row_id, [S.SUBMITTED], fields, {"polls": 1})

    async def count_download(self, row_id: str, index: int) -> None:
        await self._move(row_id, [S.READY], {}, {f"file_downloads.{index}": 1})

    async def count_corrupt(self, row_id: str, index: int) -> int:
        """One more download of file `index` did not decode; returns how many have not."""
        async with translated("update data request"):
            doc = await self._rows.find_one_and_update(
                {"_id": row_id},
                {"$inc": {f"file_corrupt.{index}": 1}},
                projection={"file_corrupt": True},
                return_document=ReturnDocument.AFTER,
            )
        return 0 if doc is None else _int_map(doc.get("file_corrupt")).get(index, 0)

    async def count_download_error(self, row_id: str) -> int:
        async with translated("update data request"):
            doc = await self._rows.find_one_and_update(
                {"_id": row_id},
                {"$inc": {"download_errors": 1}},
                projection={"download_errors": True},
                return_document=ReturnDocument.AFTER,
            )
        return 0 if doc is None else int(doc.get("download_errors") or 0)

    async def checkpoint(self, row_id: str, index: int, position: int, records: int, bytes_read: int) -> bool:
        """File `index` is ingested up to record `position` (written and counted before this)."""
        inc = {"records_ingested": records, "bytes_downloaded": bytes_read}
        return await self._move(row_id, [S.READY], {f"file_records.{index}": position}, inc)

    async def file_done(self, row_id: str, index: int, position: int, bytes_read: int) -> bool:
        async with translated("update data request"):
            result = await self._rows.update_one(
                {"_id": row_id, "state": S.READY.value},
                {
                    "$set": {f"file_records.{index}": position},
                    "$addToSet": {"files_done": index},
                    "$inc": {"bytes_downloaded": bytes_read},
                },
            )
        return result.matched_count == 1

    async def done(self, row_id: str) -> bool:
        return await self._move(row_id, [S.READY, S.SUBMITTING, S.DONE], {"state": S.DONE.value})

    async def fail(self, row_id: str, reason: str) -> bool:
        source = [S.PLANNED, S.SUBMITTING, S.SUBMITTED, S.READY]
        return await self._move(row_id, source, {"state": S.FAILED.value, "error": reason})

    # --- reading for status and metrics -----------------------------------------------------

    async def states_of_run(self, run_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with translated("count data requests"):
            async for doc in self._rows.find({"run_id": run_id}, {"state": True}):
                counts[doc["state"]] = counts.get(doc["state"], 0) + 1
        return counts

    async def count_by_state(self) -> dict[str, int]:
        counts = {s.value: 0 for s in S}
        async with translated("count data requests"):
            rows = await self._rows.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])
            async for row in rows:
                counts[str(row["_id"])] = int(row["n"])
        return counts

    async def listed(
        self, *, run_id: str | None, states: Sequence[S] | None, limit: int
    ) -> list[DataRequest]:
        """Rows, oldest first, of one run or all, in these states or any."""
        query: Doc = {} if run_id is None else {"run_id": run_id}
        if states is not None:
            query["state"] = {"$in": [s.value for s in states]}
        async with translated("read data requests"):
            cursor = self._rows.find(query).sort("created_at", ASCENDING).limit(limit)
            return [_from_doc(doc) async for doc in cursor]

    # --- reading for the dashboard ------------------------------------------------------------

    async def summaries(
        self, *, run_id: str | None, before: tuple[datetime, str] | None, limit: int
    ) -> list[DataRequestSummary]:
        """Newest first, of one run or all; `before` is the (created_at, row id) the last page ended at."""
        query: Doc = {} if run_id is None else {"run_id": run_id}
        if before is not None:
            at, row_id = before
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": row_id}}]
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        async with translated("page data requests"):
            cursor = self._rows.find(query, _SUMMARY_FIELDS).sort(order).limit(limit)
            return [_summary(doc) async for doc in cursor]

    async def find_by_request_id(self, request_id: str, limit: int = 5) -> list[DataRequest]:
        """Rows carrying this upstream id (one, unless a request was re-planned under another run)."""
        async with translated("find data request"):
            cursor = self._rows.find({"request_id": request_id}).limit(limit)
            return [_from_doc(doc) async for doc in cursor]
