"""The run: one home for its kinds, states, allowed transitions, counters and sub-records.

A run is what one producer call (a file of ids, a search, later a bulk export, a sync tick or a
webhook batch) becomes. Its record lives in MongoDB (written only by `worker.store.runs`, which
speaks this model); its live counters live in Redis (`worker.progress`).

States and the only moves between them (the table behind `allowed_from`, which every state change's
compare-and-set in the store uses):

    enqueueing ──► running ──► finished ──► running      (a dead-letter requeue reopens it)
        │            │  ▲ │
        │            │  │ └──► failed ──► running        (recover: rebuild from MongoDB)
        │            ▼  │
        │          paused                                (by hand, or out of credits)
        └──────────────┴──► cancelled                    (from any active state; final)

`running → running` is the recovery move: the feed cursor is rewound while the run stays running.
Outcomes: every accepted item ends with exactly one of `Outcome`; a run is finished when
`processed` (items with an outcome) reaches `accepted`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any


class RunKind(StrEnum):
    IDS = "ids"
    NAMES = "names"
    SEARCH = "search"
    WEBHOOK = "webhook"  # a refresh of the ids a webhook notice named (source: webhook:<subscription>)
    BULK = "bulk"  # ids (or a search) collected through data requests: see `BulkPlan`
    SYNC = "sync"  # planned by the scheduler for a saved sync (worker.sync_model)


class RunState(StrEnum):
    ENQUEUEING = "enqueueing"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_STATES: tuple[str, ...] = tuple(state.value for state in RunState)
ACTIVE_STATES = frozenset({RunState.ENQUEUEING, RunState.RUNNING, RunState.PAUSED})

# target state -> the states a run may move to it from: the one table every transition checks.
_MOVES: dict[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset({RunState.ENQUEUEING, RunState.RUNNING, RunState.PAUSED, RunState.FAILED}),
    RunState.PAUSED: frozenset({RunState.RUNNING}),
    RunState.FINISHED: frozenset({RunState.RUNNING}),
    RunState.FAILED: frozenset({RunState.ENQUEUEING, RunState.RUNNING}),
    RunState.CANCELLED: ACTIVE_STATES,
}
# Reopening a finished run is allowed only for a dead-letter requeue (see `REOPEN`).
REOPEN_FROM = frozenset({RunState.FINISHED})


def allowed_from(target: RunState, *, reopen: bool = False) -> frozenset[RunState]:
    base = _MOVES.get(target, frozenset())
    return base | REOPEN_FROM if reopen and target is RunState.RUNNING else base


class Outcome(StrEnum):
    """The final outcome of one item in one run (each item is counted once)."""

    INSERTED = "inserted"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    RECOVERED = "recovered"  # found synced by this run when it was recovered after Redis lost it
    NOT_FOUND = "not_found"
    FAILED = "failed"
    SKIPPED_FRESH = "skipped_fresh"  # synced within FRESHNESS_TTL_S: no credit spent


DONE_OUTCOMES = frozenset({Outcome.INSERTED, Outcome.CHANGED, Outcome.UNCHANGED, Outcome.RECOVERED})
# Informational counters beside the outcomes (not outcomes: an item can add to them many times).
COUNTER_429 = "upstream_429"
COUNTER_RETRIES = "retries"
COUNTER_SHARED = "shared"  # items another run's job was already collecting; counted when it finished


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class FeedCursor:
    """Where the feeder is in a run's stored input chunks. `epoch` moves on every rewind, so a feed
    that read the cursor before a rewind cannot write its stale position back over it."""

    seq: int = 0
    offset: int = 0
    done: bool = False
    epoch: int = 0


@dataclass(slots=True)
class SearchCursor:
    """A search run's position: the next page to fetch and what earlier pages found."""

    next_page: int = 0
    cursor: str | None = None
    pages_fetched: int = 0
    total_results: int | None = None
    ids_seen: int = 0  # distinct ids this run accepted from its pages (fresh ones included)
    enqueued: int = 0
    skipped_fresh: int = 0
    exhausted: bool = False


class DataRequestState(StrEnum):
    """A data request's row in the ledger (`worker.store.ledger`). The POST is the billing event:

        planned ──► submitting ──► submitted ──► ready ──► done
           ▲            │  │           │           │
           └────────────┘  └► unknown  └──► failed ◄┘

    `submitting` is written *before* the POST. An answer proving nothing was created (429, 5xx,
    402, never sent) moves it back to planned; a job that finds a row still `submitting` (its
    worker died between the POST and the ledger write) or a POST without a usable answer makes it
    `unknown`: maybe billed, never resubmitted, surfaced in status.
    """

    PLANNED = "planned"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    READY = "ready"
    DONE = "done"
    FAILED = "failed"
    UNKNOWN = "unknown"


DATA_REQUEST_STATES: tuple[str, ...] = tuple(s.value for s in DataRequestState)
DATA_REQUEST_FINAL = frozenset({DataRequestState.DONE, DataRequestState.FAILED, DataRequestState.UNKNOWN})
# A ready request's files can be downloaded for 30 days, then the API answers 404 (spec §8.3).
DATA_REQUEST_FILES_KEPT = timedelta(days=30)


@dataclass(slots=True)
class DataRequest:
    """One data request of a bulk run: what it asks for, where it is, and its ingest checkpoint.

    An id_file request's ids are the run's stored input chunks `chunk_seqs` (no copy); an es_dsl
    request carries its query. Files are addressed by their index in `files` (names hold dots).
    """

    row_id: str
    run_id: str
    seq: int
    kind: str  # "id_file" or "es_dsl"
    fingerprint: str
    chunk_seqs: list[int] = field(default_factory=list)
    query_json: str | None = None
    limit: int | None = None
    state: DataRequestState = DataRequestState.PLANNED
    request_id: str | None = None
    error: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    submitting_at: datetime | None = None
    submitted_at: datetime | None = None
    ready_at: datetime | None = None
    polls: int = 0
    files: list[str] = field(default_factory=list)
    files_done: list[int] = field(default_factory=list)
    file_records: dict[int, int] = field(default_factory=dict)  # file index -> records ingested
    file_downloads: dict[int, int] = field(default_factory=dict)  # file index -> downloads started
    file_corrupt: dict[int, int] = field(default_factory=dict)  # file index -> downloads that were corrupt
    download_errors: int = 0
    records_ingested: int = 0
    bytes_downloaded: int = 0


@dataclass(slots=True)
class BulkPlan:
    """A bulk run's sub-record: where its items came from and how its data requests were planned."""

    source_kind: str  # "ids" or "search"
    requests_planned: int = 0
    planned: bool = False  # every data request of the run is in the ledger
    matched: int | None = None  # search: the pre-count (x-total-results)
    split: bool = False  # search over 10,000 matches: ids collected by pages, then id_file requests
    auto: bool = False  # search: the planner decides after the count (below BULK_MIN_ITEMS: collect)


@dataclass(slots=True)
class SyncOrigin:
    """A sync run's link to its sync and what the tick planned. The run's first `delta_items`
    stored items are the delta (changed profiles of a query sync), the rest the staleness sweep."""

    sync_name: str
    delta_items: int = 0
    sweep_items: int = 0
    watermark_from: str | None = None  # the watermark the delta searched from
    delta_complete: bool = True  # False: the budget cut the delta, so the watermark must not move
    via: str = "collect"  # the planner's choice for the sweep (`jobs.sync_plan.plan_sweep`)


@dataclass(slots=True)
class Rejection:
    line: int
    value: str
    reason: str


@dataclass(slots=True)
class Run:
    run_id: str
    kind: RunKind
    source: str
    state: RunState = RunState.ENQUEUEING
    created_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    paused_at: datetime | None = None
    pause_reason: str | None = None
    error: str | None = None
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    rejected_sample: list[Rejection] = field(default_factory=list)
    inputs_complete: bool = False
    feed: FeedCursor = field(default_factory=FeedCursor)
    search: SearchCursor | None = None
    query_json: str | None = None  # a search body as text: ES field paths contain dots
    max_profiles: int | None = None
    bulk: BulkPlan | None = None
    final_counts: dict[str, int] = field(default_factory=dict)  # copied from Redis when it ends
    sync: SyncOrigin | None = None  # kind sync: which sync planned it, and the plan

    @property
    def is_search(self) -> bool:
        return self.search is not None

    def expected_items(self) -> int | None:
        """How many items the run will have when its inputs are complete (None: not known yet)."""
        if self.inputs_complete:
            return self.accepted
        if self.search is not None and self.search.total_results is not None:
            total = self.search.total_results
            return total if self.max_profiles is None else min(total, self.max_profiles)
        return None

    def details(self) -> dict[str, Any]:
        """Kind-specific fields for status output."""
        out: dict[str, Any] = {}
        if self.error:
            out["error"] = self.error
        if self.pause_reason:
            out["pause_reason"] = self.pause_reason
        if self.sync is not None:
            out.update(
                sync=self.sync.sync_name,
                delta_items=self.sync.delta_items,
                sweep_items=self.sync.sweep_items,
                via=self.sync.via,
            )
        if self.search is not None:
            s = self.search
            out.update(
                max_profiles=self.max_profiles,
                pages_fetched=s.pages_fetched,
                total_results=s.total_results,
                ids_seen=s.ids_seen,
                enqueued=s.enqueued,
                search_complete=s.exhausted,
            )
        if self.bulk is not None:
            b = self.bulk
            out.update(
                via="bulk",
                bulk_source=b.source_kind,
                data_requests_planned=b.requests_planned,
                bulk_planned=b.planned,
            )
            if b.matched is not None:
                out.update(matched=b.matched, split=b.split)
        return out
