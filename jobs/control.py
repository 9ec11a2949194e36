"""Run control for the HTTP API and the CLI: create, list, pause, resume, cancel.

Pausing or cancelling takes the run's queued jobs out of the queue (jobs a worker already started
finish and are counted: nothing is half-written). Pausing also rewinds the feeder's cursor; the
feeder skips items already counted, so a resumed run re-feeds exactly what was taken out.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jobs.feeder import feed
from jobs.inputs import InputKind
from jobs.pause import REWOUND_FEED, move_run, pause_run, status_or_raise
from jobs.producers import Receipt, enqueue_lines
from jobs.runs import RUN_STATES, RunState, RunStatus, finish_if_complete, status_of, utcnow
from jobs.search import enqueue_page, start_search_run
from jobs.search_input import validate_search_body
from worker import keys
from worker.errors import InputError
from worker.runtime import Services


@dataclass(frozen=True, slots=True)
class RunPage:
    runs: list[RunStatus]
    next_cursor: str | None


async def create_list_run(
    services: Services, kind: InputKind, values: Sequence[object], *, source: str
) -> Receipt:
    """A run from a JSON list; every bad element is rejected with its 0-based index as its `line`."""
    return await enqueue_lines(services, _as_lines(values), kind, source=source, keep_rejected=len(values))


def _as_lines(values: Sequence[object]) -> Iterator[tuple[int, str | InputError]]:
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | str):
            yield index, InputError(f"expected a string or an integer, got {type(value).__name__}")
        elif isinstance(value, str) and ("\n" in value or "\r" in value):
            yield index, InputError("value contains a line break")
        elif isinstance(value, str) and (not value.strip() or value.strip().startswith("#")):
            # In a file these are blank lines and comments; in a JSON list they are bad items.
            yield index, InputError("empty value" if not value.strip() else "not an id or a name")
        else:
            yield index, str(value)


async def create_search_run(
    services: Services, body: object, *, max_profiles: int | None, source: str
) -> str:
    if max_profiles is not None and max_profiles < 1:
        raise InputError("max_profiles must be at least 1")
    return await start_search_run(
        services, validate_search_body(body), max_profiles=max_profiles, source=source
    )


async def resume_run(services: Services, run_id: str) -> RunStatus:
    """Paused → running. Also reopens the API to the fleet if it was closed for lack of credits:
    the caller says credits were added; if not, the next 402 pauses the runs again."""
    fields = {"paused_at": None, "pause_reason": None, **REWOUND_FEED}
    await move_run(services, run_id, [RunState.PAUSED], RunState.RUNNING, fields)
    await services.credits.clear()
    run = await services.store.runs.get(run_id)
    assert run is not None
    search = run.get("search")
    if search is not None and not search.get("exhausted"):
        await enqueue_page(services, run_id, int(search["next_page"]))
    counts = await services.progress.counts(run_id)
    if run.get("inputs_complete"):
        await finish_if_complete(services, run_id, counts.get("processed", 0), int(run.get("accepted", 0)))
    await feed(services)
    return await status_or_raise(services, run_id)


async def cancel_run(services: Services, run_id: str) -> RunStatus:
    active = [RunState.ENQUEUEING, RunState.RUNNING, RunState.PAUSED]
    await move_run(services, run_id, active, RunState.CANCELLED, {"finished_at": utcnow()})
    await services.queue.remove_queued(keys.JOB_QUEUE, run_id)
    return await status_or_raise(services, run_id)


async def list_runs(services: Services, *, state: str | None, limit: int, cursor: str | None) -> RunPage:
    if state is not None and state not in RUN_STATES:
        raise InputError(f"unknown state {state!r}; one of {', '.join(RUN_STATES)}")
    query: dict[str, Any] = {} if state is None else {"state": state}
    if cursor is not None:
        created_at, run_id = _decode_cursor(cursor)
        query["$or"] = [
            {"created_at": {"$lt": created_at}},
            {"created_at": created_at, "_id": {"$lt": run_id}},
        ]
    docs = await services.store.runs.page(query, limit + 1)
    runs = [await status_of(services, doc) for doc in docs[:limit]]
    last = docs[limit - 1] if len(docs) > limit else None
    return RunPage(runs, None if last is None else _encode_cursor(last["created_at"], str(last["_id"])))


def _encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, _, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created), run_id
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InputError("invalid cursor") from exc


__all__ = [
    "RunPage",
    "cancel_run",
    "create_list_run",
    "create_search_run",
    "list_runs",
    "pause_run",
    "resume_run",
]
