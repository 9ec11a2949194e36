"""Runs: one per producer call. The record lives in MongoDB; live counters live in Redis.

States: enqueueing → running → finished (or failed). A run is finished when every accepted item has
a final outcome: inserted, changed, unchanged, not_found, failed, or already_queued (the item was
already queued by another run when this one was enqueued).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from worker.runtime import Services

FINAL_OUTCOMES = ("inserted", "changed", "unchanged", "not_found", "failed", "already_queued")


class RunState(StrEnum):
    ENQUEUEING = "enqueueing"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


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

    @property
    def processed(self) -> int:
        return self.counts.get("processed", 0)

    @property
    def done(self) -> int:
        return sum(self.counts.get(k, 0) for k in ("inserted", "changed", "unchanged"))

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
            "upstream_429": c.get("upstream_429", 0),
            "retries": c.get("retries", 0),
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
    if doc is None:
        return None
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
    )
