"""Runs: one per producer call. The record lives in MongoDB; live counters live in Redis.

States: enqueueing → running → finished (or failed). A run is finished when every accepted item has
a final outcome: inserted, changed, unchanged, not_found, failed, or already_queued (the item was
already queued by another run when this one was enqueued).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from worker.runtime import Services

FINAL_OUTCOMES = (
    "inserted",
    "changed",
    "unchanged",
    "recovered",  # found synced by this run when it was resumed after its counters were lost
    "not_found",
    "failed",
    "already_queued",
    "skipped_fresh",
)
DONE_OUTCOMES = ("inserted", "changed", "unchanged", "recovered")


class RunState(StrEnum):
    ENQUEUEING = "enqueueing"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"


RUN_STATES = tuple(state.value for state in RunState)


def new_run_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RunStatus:
    run_id: str
    kind: str
    state: str
    created_at: datetime | None
    finished_at: datetime | None
    accepted: int
    rejected: int
    duplicates: int
    counts: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # per kind: the query and search state
    eta_s: float | None = None

    @property
    def processed(self) -> int:
        return self.counts.get("processed", 0)

    @property
    def done(self) -> int:
        return sum(self.counts.get(k, 0) for k in DONE_OUTCOMES)

    def as_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "state": self.state,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "queued": max(0, self.accepted - self.processed),
            "done": self.done,
            "inserted": c.get("inserted", 0),
            "changed": c.get("changed", 0),
            "unchanged": c.get("unchanged", 0),
            "not_found": c.get("not_found", 0),
            "failed": c.get("failed", 0),
            "already_queued": c.get("already_queued", 0),
            "skipped_fresh": c.get("skipped_fresh", 0),
            "upstream_429": c.get("upstream_429", 0),
            "retries": c.get("retries", 0),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            **self.details,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def create_run(services: Services, run_id: str, kind: str, source: str) -> None:
    await services.store.runs.insert(
        {
            "_id": run_id,
            "kind": kind,
            "source": source,
            "state": RunState.ENQUEUEING.value,
            "created_at": utcnow(),
            "finished_at": None,
            "accepted": 0,
            "rejected": 0,
            "duplicates": 0,
        }
    )


async def finish_if_complete(services: Services, run_id: str, processed: int, accepted: int) -> bool:
    """Close the run when every accepted item has an outcome. Safe to call from many workers."""
    if accepted < 0 or processed < accepted:
        return False
    counts = await services.progress.counts(run_id)
    return await services.store.runs.transition(
        run_id,
        [RunState.RUNNING.value],
        {"state": RunState.FINISHED.value, "finished_at": utcnow(), "counts": counts},
    )


async def record_outcome(services: Services, run_id: str, item_key: str, outcome: str) -> None:
    _, processed, accepted = await services.progress.record(run_id, item_key, outcome)
    await finish_if_complete(services, run_id, processed, accepted)


async def get_status(services: Services, run_id: str) -> RunStatus | None:
    doc = await services.store.runs.get(run_id)
    return None if doc is None else await status_of(services, doc)


async def status_of(services: Services, doc: dict[str, Any]) -> RunStatus:
    run_id = str(doc["_id"])
    live = await services.progress.counts(run_id)
    counts = live or dict(doc.get("counts") or {})
    return RunStatus(
        run_id=run_id,
        kind=str(doc.get("kind", "")),
        state=str(doc.get("state", "")),
        created_at=doc.get("created_at"),
        finished_at=doc.get("finished_at"),
        accepted=int(doc.get("accepted", 0)),
        rejected=int(doc.get("rejected", 0)),
        duplicates=int(doc.get("duplicates", 0)),
        counts=counts,
        details=_details(doc),
        eta_s=await _eta_s(services, doc, counts),
    )


async def _eta_s(services: Services, doc: dict[str, Any], counts: dict[str, int]) -> float | None:
    """Remaining collect jobs over this run's share of the collect budget.

    The feeder gives every running run an equal share of the queue window, so a run's share of
    the rate is the budget the limiter actually grants divided by the number of running runs.
    """
    if doc.get("state") != RunState.RUNNING.value:
        return None
    remaining = int(doc.get("accepted", 0)) - counts.get("processed", 0)
    search = doc.get("search")
    if search is not None and not search.get("exhausted") and search.get("total_results") is not None:
        expected = int(search["total_results"])
        if doc.get("max_profiles") is not None:
            expected = min(expected, int(doc["max_profiles"]))
        remaining = expected - counts.get("processed", 0)
    settings = services.settings
    rate_per_s = settings.collect_rps * (1 - settings.rate_safety_margin)
    running = max(1, await services.store.runs.count({"state": RunState.RUNNING.value}))
    return max(0, remaining) / (rate_per_s / running)


def _details(doc: dict[str, Any]) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if doc.get("error"):
        details["error"] = doc["error"]
    if doc.get("pause_reason"):
        details["pause_reason"] = doc["pause_reason"]
    if doc.get("kind") == "search":
        search = dict(doc.get("search") or {})
        details.update(
            {
                "query": json.loads(doc["query_json"]) if doc.get("query_json") else None,
                "max_profiles": doc.get("max_profiles"),
                "pages_fetched": search.get("pages_fetched", 0),
                "total_results": search.get("total_results"),
                "ids_seen": search.get("ids_seen", 0),
                "enqueued": search.get("enqueued", 0),
                "search_complete": bool(search.get("exhausted")),
            }
        )
    return details
