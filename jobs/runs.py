"""Runs as callers see them: create one, count an item's outcome, finish it, read its status.

The run itself (kinds, states, allowed moves, counters) is `worker.run_model`; its record is
written only by `worker.store.runs`. This module adds what needs both stores: live counters from
Redis, the finishing move when every accepted item has an outcome, and status with an ETA.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker.errors import InputError
from worker.run_model import (
    COUNTER_429,
    COUNTER_RETRIES,
    COUNTER_SHARED,
    DONE_OUTCOMES,
    RUN_STATES,
    DataRequest,
    DataRequestState,
    Outcome,
    Run,
    RunKind,
    RunState,
    SyncOrigin,
    utcnow,
)
from worker.runtime import Services

__all__ = [
    "RUN_STATES",
    "RunPage",
    "RunState",
    "RunStatus",
    "create_run",
    "finish_if_complete",
    "get_status",
    "list_runs",
    "new_run_id",
    "record_outcome",
    "status_of",
    "utcnow",
]


def new_run_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class RunStatus:
    run_id: str
    kind: str
    state: RunState
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
        return done_of(self.counts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "kind": self.kind,
            "state": self.state.value,
            "created_at": _iso(self.created_at),
            "finished_at": _iso(self.finished_at),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "duplicates": self.duplicates,
            "queued": max(0, self.accepted - self.processed),
            **counter_fields(self.counts),
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
            **self.details,
        }


def done_of(counts: dict[str, int]) -> int:
    return sum(counts.get(k, 0) for k in DONE_OUTCOMES)


def counter_fields(counts: dict[str, int]) -> dict[str, int]:
    """What a run's live counters say, as a run's status shows it (and the dashboard's live
    counters, `/v1/dashboard/live-runs`, between two reads of the runs page)."""
    return {
        "processed": counts.get("processed", 0),
        "done": done_of(counts),
        **{o.value: counts.get(o.value, 0) for o in Outcome if o is not Outcome.RECOVERED},
        "shared": counts.get(COUNTER_SHARED, 0),
        "upstream_429": counts.get(COUNTER_429, 0),
        "retries": counts.get(COUNTER_RETRIES, 0),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def create_run(
    services: Services, kind: RunKind, source: str, *, sync: SyncOrigin | None = None
) -> Run:
    """A new run record; `sync`: the sync tick that planned it (its link to the sync)."""
    run = Run(run_id=new_run_id(), kind=kind, source=source, sync=sync)
    await services.store.runs.create(run)
    return run


async def finish_if_complete(services: Services, run_id: str, processed: int, accepted: int) -> bool:
    """Close the run when every accepted item has an outcome. Safe to call from many workers."""
    if accepted < 0 or processed < accepted:
        return False
    counts = await services.progress.counts(run_id)
    return await services.store.runs.move(
        run_id, RunState.FINISHED, finished_at=utcnow(), final_counts=counts
    )


async def record_outcome(services: Services, run_id: str, item_key: str, outcome: str) -> None:
    _, processed, accepted = await services.progress.record(run_id, item_key, outcome)
    await finish_if_complete(services, run_id, processed, accepted)


async def republish_size(services: Services, run: Run) -> None:
    """Tell the counters the run's size again (Redis may have lost it) and finish it if it is done."""
    if run.inputs_complete:
        processed, accepted = await services.progress.set_accepted(run.run_id, run.accepted)
        await finish_if_complete(services, run.run_id, processed, accepted)


async def get_status(services: Services, run_id: str) -> RunStatus | None:
    run = await services.store.runs.get(run_id)
    return None if run is None else await status_of(services, run)


async def status_of(
    services: Services, run: Run, *, running: int | None = None, live: dict[str, int] | None = None
) -> RunStatus:
    """`running` (the number of running runs) and `live` (the run's counters in Redis): when the
    caller has read them already (a page reads them once for all its runs)."""
    if live is None:
        live = await services.progress.counts(run.run_id)
    counts = live or dict(run.final_counts)
    details = run.details()
    if run.query_json is not None:
        details["query"] = json.loads(run.query_json)
    if run.bulk is not None:
        details.update(await _bulk_details(services, run))
    return RunStatus(
        run_id=run.run_id,
        kind=run.kind.value,
        state=run.state,
        created_at=run.created_at,
        finished_at=run.finished_at,
        accepted=run.accepted,
        rejected=run.rejected,
        duplicates=run.duplicates,
        counts=counts,
        details=details,
        eta_s=await _eta_s(services, run, counts, running),
    )


async def _bulk_details(services: Services, run: Run) -> dict[str, Any]:
    """A bulk run's data requests by state, and the ones that need a person: `unknown` (maybe
    billed, never resubmitted), `failed` (with the reason)."""
    rows = await services.store.ledger.of_run(run.run_id)
    states: dict[str, int] = {}
    for row in rows:
        states[row.state.value] = states.get(row.state.value, 0) + 1
    attention = [describe_data_request(r) for r in rows if needs_attention(r)]
    return {
        "data_requests": states,
        "data_requests_attention": attention[:20],
        "records_ingested": sum(r.records_ingested for r in rows),
        "bytes_downloaded": sum(r.bytes_downloaded for r in rows),
    }


def needs_attention(row: DataRequest) -> bool:
    """Failed, unknown (maybe billed), or `submitting` for over a minute (a POST's worker died and
    its job has not run again yet: it will become unknown, never be resubmitted)."""
    if row.state in (DataRequestState.FAILED, DataRequestState.UNKNOWN):
        return True
    started = row.submitting_at
    return (
        row.state is DataRequestState.SUBMITTING
        and started is not None
        and (utcnow() - started).total_seconds() > 60
    )


def describe_data_request(row: DataRequest) -> dict[str, Any]:
    return {
        "data_request": row.row_id,
        "state": row.state.value,
        "kind": row.kind,
        "fingerprint": row.fingerprint,
        "request_id": row.request_id,
        "submitted_at": _iso(row.submitted_at or row.submitting_at),
        "files": len(row.files),
        "files_done": len(row.files_done),
        "records_ingested": row.records_ingested,
        "reason": row.error,
    }


async def _eta_s(
    services: Services, run: Run, counts: dict[str, int], running: int | None = None
) -> float | None:
    """Remaining collect jobs over this run's share of the collect budget.

    The feeder gives every running run an equal share of the queue window, so a run's share of
    the rate is the budget the limiter actually grants divided by the number of running runs.
    """
    if run.state is not RunState.RUNNING:
        return None
    expected = run.expected_items()
    remaining = (run.accepted if expected is None else expected) - counts.get("processed", 0)
    settings = services.settings
    if run.bulk is not None:
        # A bulk run's time is the data requests' turnaround (the planner's time model), not a rate
        # share: what is left of it since the run started, plus the per-record time of what is left.
        elapsed_s = (utcnow() - run.created_at).total_seconds()
        ready_s = max(0.0, settings.bulk_expected_ready_s - elapsed_s)
        return ready_s + max(0, remaining) * settings.bulk_expected_per_record_s
    rate_per_s = settings.collect_rps * (1 - settings.rate_safety_margin)
    if running is None:
        running = await services.store.runs.count_in_state(RunState.RUNNING)
    return max(0, remaining) / (rate_per_s / max(1, running))


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunStatus]
    next_cursor: str | None


async def list_runs(
    services: Services,
    *,
    state: str | None,
    limit: int,
    cursor: str | None,
    running_count: Callable[[], Awaitable[int]] | None = None,
) -> RunPage:
    """A page of runs, newest first. `running_count`: where the page's ETAs get the number of
    running runs (default: a count now); the API passes its few-seconds cache of runs by state,
    which the dashboard's fleet figures read too, so a dashboard refresh counts them once."""
    if state is not None and state not in RUN_STATES:
        raise InputError(f"unknown state {state!r}; one of {', '.join(RUN_STATES)}")
    before = None if cursor is None else decode_cursor(cursor)
    runs = await services.store.runs.list_runs(
        state=None if state is None else RunState(state), before=before, limit=limit + 1
    )
    # One count of running runs for the page's ETAs and one round trip for its counters, not one
    # of each per run (the dashboard reads this page every few seconds).
    page = runs[:limit]
    running = None
    if any(run.state is RunState.RUNNING for run in page):
        count = running_count or (lambda: services.store.runs.count_in_state(RunState.RUNNING))
        running = await count()
    lives = await services.progress.counts_many([run.run_id for run in page])
    statuses = [
        await status_of(services, run, running=running, live=live)
        for run, live in zip(page, lives, strict=True)
    ]
    last = runs[limit - 1] if len(runs) > limit else None
    return RunPage(statuses, None if last is None else encode_cursor(last.created_at, last.run_id))


def encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, _, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), run_id
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InputError("invalid cursor") from exc
