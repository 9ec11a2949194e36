"""Run records and their stored inputs in MongoDB, spoken in the run model's terms.

The only module that knows how a `Run` is laid out as a document. Every state change is a
compare-and-set on `state` over the states `worker.run_model` allows, so two workers finishing (or
pausing and finishing) the same run write it once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import asdict
from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection

from worker.run_model import (
    BulkPlan,
    FeedCursor,
    Rejection,
    Run,
    RunKind,
    RunState,
    SearchCursor,
    SyncOrigin,
    allowed_from,
)
from worker.store.base import Doc, translated

# Running runs are few (each is a user's sync); the feeder looks at all of them, oldest first.
FEEDABLE_LIMIT = 10_000


def _to_doc(run: Run) -> Doc:
    return {
        "_id": run.run_id,
        "kind": run.kind.value,
        "source": run.source,
        "state": run.state.value,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "paused_at": run.paused_at,
        "pause_reason": run.pause_reason,
        "error": run.error,
        "accepted": run.accepted,
        "rejected": run.rejected,
        "duplicates": run.duplicates,
        "rejected_sample": [asdict(r) for r in run.rejected_sample],
        "inputs_complete": run.inputs_complete,
        "feed": asdict(run.feed),
        "search": None if run.search is None else asdict(run.search),
        "query_json": run.query_json,
        "max_profiles": run.max_profiles,
        "bulk": None if run.bulk is None else asdict(run.bulk),
        "counts": dict(run.final_counts),
        "sync": None if run.sync is None else asdict(run.sync),
    }


def _from_doc(doc: Doc) -> Run:
    feed = doc.get("feed") or {}
    search = doc.get("search")
    return Run(
        run_id=str(doc["_id"]),
        kind=RunKind(doc.get("kind", RunKind.IDS.value)),
        source=str(doc.get("source", "")),
        state=RunState(doc["state"]),
        created_at=doc["created_at"],
        finished_at=doc.get("finished_at"),
        paused_at=doc.get("paused_at"),
        pause_reason=doc.get("pause_reason"),
        error=doc.get("error"),
        accepted=int(doc.get("accepted") or 0),
        rejected=int(doc.get("rejected") or 0),
        duplicates=int(doc.get("duplicates") or 0),
        rejected_sample=[Rejection(**r) for r in doc.get("rejected_sample") or []],
        inputs_complete=bool(doc.get("inputs_complete")),
        feed=FeedCursor(
            seq=int(feed.get("seq", 0)),
            offset=int(feed.get("offset", 0)),
            done=bool(feed.get("done", False)),
            epoch=int(feed.get("epoch", 0)),
        ),
        search=None if search is None else SearchCursor(**search),
        query_json=doc.get("query_json"),
        max_profiles=doc.get("max_profiles"),
        bulk=None if doc.get("bulk") is None else BulkPlan(**doc["bulk"]),
        final_counts={str(k): int(v) for k, v in (doc.get("counts") or {}).items()},
        sync=None if doc.get("sync") is None else SyncOrigin(**doc["sync"]),
    )


def _chunk_id(run_id: str, seq: int) -> str:
    return f"{run_id}:{seq:06d}"


class RunStore:
    def __init__(self, runs: AsyncCollection[Doc], inputs: AsyncCollection[Doc]) -> None:
        self._runs = runs
        self._inputs = inputs

    # --- the record -------------------------------------------------------------------------

    async def create(self, run: Run) -> None:
        async with translated("insert run"):
            await self._runs.insert_one(_to_doc(run))

    async def get(self, run_id: str) -> Run | None:
        async with translated("read run"):
            doc = await self._runs.find_one({"_id": run_id})
        return None if doc is None else _from_doc(doc)

    async def kind_of(self, run_id: str) -> str | None:
        """The run's kind (the change feed's `source`); None for an unknown run id."""
        async with translated("read run kind"):
            doc = await self._runs.find_one({"_id": run_id}, {"kind": True})
        return None if doc is None else str(doc.get("kind", RunKind.IDS.value))

    async def state_of(self, run_id: str) -> RunState | None:
        async with translated("read run state"):
            doc = await self._runs.find_one({"_id": run_id}, {"state": True})
        return None if doc is None else RunState(doc["state"])

    async def move(
        self,
        run_id: str,
        target: RunState,
        *,
        only_from: frozenset[RunState] | None = None,
        reopen: bool = False,
        rewind_feed: bool = False,
        finished_at: datetime | None = None,
        paused_at: datetime | None = None,
        pause_reason: str | None = None,
        error: str | None = None,
        final_counts: Mapping[str, int] | None = None,
    ) -> bool:
        """The one state-change path: compare-and-set on `state` over the model's allowed states.

        Returns False when the run is not in a state the move is allowed from (nothing written).
        `only_from` narrows the model's table for this caller (e.g. a producer starts only an
        enqueueing run: it must not un-pause one); it can never widen it.
        Moving to running clears the pause fields and the error; `rewind_feed` restarts the feed
        cursor at the first chunk under a new epoch.
        """
        fields: Doc = {"state": target.value, "finished_at": finished_at}
        if target is not RunState.PAUSED:
            fields.update(paused_at=None, pause_reason=None)
        else:
            fields.update(paused_at=paused_at, pause_reason=pause_reason)
        if target is RunState.RUNNING or error is not None:
            fields["error"] = error
        if final_counts is not None:
            fields["counts"] = dict(final_counts)
        update: Doc = {"$set": fields}
        if rewind_feed:
            fields.update({"feed.seq": 0, "feed.offset": 0, "feed.done": False})
            update["$inc"] = {"feed.epoch": 1}
        allowed_states = allowed_from(target, reopen=reopen)
        if only_from is not None:
            allowed_states &= only_from
        allowed = [s.value for s in allowed_states]
        async with translated("update run"):
            result = await self._runs.update_one({"_id": run_id, "state": {"$in": allowed}}, update)
        return result.matched_count == 1

    async def publish_inputs(
        self, run_id: str, *, accepted: int, rejected: int, duplicates: int, sample: Sequence[Rejection]
    ) -> None:
        """The producer is done reading: the run's size is known from now on."""
        fields = {
            "inputs_complete": True,
            "accepted": accepted,
            "rejected": rejected,
            "duplicates": duplicates,
            "rejected_sample": [asdict(r) for r in sample],
        }
        async with translated("update run"):
            await self._runs.update_one({"_id": run_id}, {"$set": fields})

    async def complete_inputs(self, run_id: str, accepted: int) -> None:
        """Recovery of a run whose producer died before publishing: its stored items are its inputs."""
        async with translated("update run"):
            await self._runs.update_one(
                {"_id": run_id}, {"$set": {"inputs_complete": True, "accepted": accepted}}
            )

    async def save_feed_cursor(self, run_id: str, cursor: FeedCursor) -> bool:
        """Write the feeder's new position, unless the run was rewound (epoch moved) or left running."""
        async with translated("update feed cursor"):
            result = await self._runs.update_one(
                {"_id": run_id, "state": RunState.RUNNING.value, "feed.epoch": cursor.epoch},
                {"$set": {"feed.seq": cursor.seq, "feed.offset": cursor.offset, "feed.done": cursor.done}},
            )
        return result.matched_count == 1

    async def start_search(self, run_id: str, query_json: str, max_profiles: int | None) -> bool:
        async with translated("start search"):
            result = await self._runs.update_one(
                {"_id": run_id, "state": RunState.ENQUEUEING.value},
                {
                    "$set": {
                        "state": RunState.RUNNING.value,
                        "query_json": query_json,
                        "max_profiles": max_profiles,
                        "search": asdict(SearchCursor()),
                    }
                },
            )
        return result.matched_count == 1

    async def advance_search(self, run_id: str, page_no: int, search: SearchCursor) -> bool:
        """Record page `page_no` as done, once: compare-and-set on the run's next page number."""
        fields = {f"search.{k}": v for k, v in asdict(search).items()}
        fields.update({"search.next_page": page_no + 1, "accepted": search.ids_seen})
        if search.exhausted:
            fields["inputs_complete"] = True
        async with translated("advance search"):
            result = await self._runs.update_one(
                {"_id": run_id, "state": RunState.RUNNING.value, "search.next_page": page_no},
                {"$set": fields},
            )
        return result.matched_count == 1

    async def start_bulk(
        self, run_id: str, plan: BulkPlan, *, query_json: str | None = None, max_profiles: int | None = None
    ) -> None:
        """Make a new run a bulk run: the feeder never feeds it (its items go by data requests)."""
        fields: Doc = {"kind": RunKind.BULK.value, "bulk": asdict(plan), "feed.done": True}
        if query_json is not None:
            fields.update(query_json=query_json, max_profiles=max_profiles, search=asdict(SearchCursor()))
        async with translated("start bulk run"):
            await self._runs.update_one({"_id": run_id}, {"$set": fields})

    async def record_bulk_plan(
        self, run_id: str, *, requests: int, planned: bool, matched: int | None = None, split: bool = False
    ) -> None:
        fields: Doc = {"bulk.requests_planned": requests, "bulk.planned": planned, "bulk.split": split}
        if matched is not None:
            fields["bulk.matched"] = matched
        async with translated("update bulk plan"):
            await self._runs.update_one({"_id": run_id}, {"$set": fields})

    async def bulk_search_to_collect(self, run_id: str) -> bool:
        """A bulk search the planner sent to collect after its count: a plain search run from now."""
        fields: Doc = {"kind": RunKind.SEARCH.value, "bulk": None, "feed.done": False}
        async with translated("update run"):
            result = await self._runs.update_one(
                {"_id": run_id, "kind": RunKind.BULK.value, "state": RunState.RUNNING.value}, {"$set": fields}
            )
        return result.matched_count == 1

    async def publish_size(self, run_id: str, accepted: int) -> None:
        """A run whose size is known only now (a bulk search: the pre-count, or what was delivered)."""
        async with translated("update run"):
            await self._runs.update_one(
                {"_id": run_id}, {"$set": {"inputs_complete": True, "accepted": accepted}}
            )

    # --- listing ----------------------------------------------------------------------------

    async def list_runs(
        self, *, state: RunState | None, before: tuple[datetime, str] | None, limit: int
    ) -> list[Run]:
        """Newest first; `before` is the (created_at, run_id) of the last run of the previous page."""
        query: Doc = {} if state is None else {"state": state.value}
        if before is not None:
            created_at, run_id = before
            query["$or"] = [
                {"created_at": {"$lt": created_at}},
                {"created_at": created_at, "_id": {"$lt": run_id}},
            ]
        async with translated("list runs"):
            cursor = (
                self._runs.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
            )
            return [_from_doc(doc) async for doc in cursor]

    async def count_runs_by_state(self) -> dict[RunState, int]:
        counts = dict.fromkeys(RunState, 0)
        async with translated("count runs"):
            rows = await self._runs.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])
            async for row in rows:
                counts[RunState(row["_id"])] = int(row["n"])
        return counts

    async def count_in_state(self, state: RunState) -> int:
        async with translated("count runs"):
            return await self._runs.count_documents({"state": state.value})

    async def count_all(self) -> int:
        async with translated("count runs"):
            return await self._runs.count_documents({})

    async def feedable(self) -> list[Run]:
        """Running runs whose inputs are not all fed yet, oldest first."""
        async with translated("list feedable runs"):
            cursor = (
                self._runs.find(
                    {
                        "state": RunState.RUNNING.value,
                        "feed.done": {"$ne": True},
                        "kind": {"$ne": RunKind.BULK.value},  # a bulk run's items go by data requests
                    }
                )
                .sort("created_at", ASCENDING)
                .limit(FEEDABLE_LIMIT)
            )
            return [_from_doc(doc) async for doc in cursor]

    async def running(self) -> list[Run]:
        async with translated("list running runs"):
            cursor = self._runs.find({"state": RunState.RUNNING.value}).sort("created_at", ASCENDING)
            return [_from_doc(doc) async for doc in cursor.limit(FEEDABLE_LIMIT)]

    async def of_sync(self, sync_name: str, *, limit: int = 20) -> list[Run]:
        """A sync's runs, newest first."""
        async with translated("list sync runs"):
            cursor = self._runs.find({"sync.sync_name": sync_name}).sort("created_at", DESCENDING)
            return [_from_doc(doc) async for doc in cursor.limit(limit)]

    # --- stored inputs ----------------------------------------------------------------------

    async def save_inputs(
        self, run_id: str, seq: int, items: Sequence[str], fresh: Sequence[str] = ()
    ) -> None:
        """Store one chunk of a run's accepted inputs, so the run can be rebuilt without Redis.
        `fresh`: accepted items skipped as synced within FRESHNESS_TTL_S (outcomes, not work)."""
        doc = {
            "_id": _chunk_id(run_id, seq),
            "run_id": run_id,
            "seq": seq,
            "items": list(items),
            "fresh": list(fresh),
        }
        # A replace, not an insert: a producer that stores a chunk again after a crash changes nothing.
        async with translated("store run inputs"):
            await self._inputs.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def save_page_once(
        self, run_id: str, page_no: int, items: Sequence[str], fresh: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        """Store a search page's chunk unless one is stored already; returns the stored (items, fresh).

        First writer wins: two jobs that fetched the same page both count what the chunk holds.
        """
        doc = {
            "_id": _chunk_id(run_id, page_no),
            "run_id": run_id,
            "seq": page_no,
            "items": list(items),
            "fresh": list(fresh),
        }
        async with translated("store search page"):
            await self._inputs.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)
            stored = await self._inputs.find_one({"_id": doc["_id"]})
        assert stored is not None
        return list(stored["items"]), list(stored.get("fresh") or [])

    async def seen_elsewhere(self, run_id: str, seq: int, item_keys: Sequence[str]) -> set[str]:
        """Which of these items another chunk of the run already holds (a search id on two pages)."""
        if not item_keys:
            return set()
        wanted = list(item_keys)
        query = {
            "run_id": run_id,
            "seq": {"$ne": seq},
            "$or": [{"items": {"$in": wanted}}, {"fresh": {"$in": wanted}}],
        }
        found: set[str] = set()
        wanted_set = set(wanted)
        async with translated("read run inputs"):
            async for doc in self._inputs.find(query, {"items": True, "fresh": True}):
                found.update(wanted_set.intersection(doc.get("items") or []))
                found.update(wanted_set.intersection(doc.get("fresh") or []))
        return found

    async def iter_chunks(self, run_id: str) -> AsyncIterator[tuple[list[str], list[str]]]:
        """Every stored chunk in order, as (items to collect, items skipped as fresh)."""
        async with translated("read run inputs"):
            cursor = self._inputs.find({"run_id": run_id}).sort("seq", ASCENDING)
            async for doc in cursor:
                yield list(doc["items"]), list(doc.get("fresh") or [])

    async def input_chunk(self, run_id: str, seq: int) -> list[str] | None:
        async with translated("read run inputs"):
            doc = await self._inputs.find_one({"_id": _chunk_id(run_id, seq)}, {"items": True})
        return None if doc is None else list(doc["items"])

    async def chunk_sizes(self, run_id: str) -> list[tuple[int, int]]:
        """(seq, items to collect) of every stored chunk, in order (fresh items not counted)."""
        async with translated("read run inputs"):
            cursor = self._inputs.find({"run_id": run_id}, {"seq": True, "items": True}).sort(
                "seq", ASCENDING
            )
            return [(int(doc["seq"]), len(doc.get("items") or [])) async for doc in cursor]

    async def count_input_chunks(self, run_id: str) -> int:
        async with translated("count run inputs"):
            return await self._inputs.count_documents({"run_id": run_id})
