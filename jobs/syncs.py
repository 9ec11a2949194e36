"""Syncs as callers see them: create (validated, all or nothing), list, show, pause, resume,
delete, run-now. The scheduler that runs them is `jobs.scheduler`; the plan of a tick is
`jobs.sync_plan`; freshness figures are `jobs.freshness`.

A definition is checked completely before anything is written: an unknown duration unit, a
max-age shorter than the interval, an empty or bad id file, or a malformed query is refused with
a message saying which, and nothing is saved.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jobs.inputs import InputKind, Item, Rejected, parse_lines
from jobs.search_input import parse_search_body, validate_search_body
from jobs.sync_webhooks import webhook_view
from worker.errors import InputError
from worker.run_model import utcnow
from worker.runtime import Services
from worker.sync_model import (
    DEFAULT_EVERY_S,
    DEFAULT_MAX_AGE_S,
    Sync,
    SyncSource,
    SyncState,
    check_duration_s,
    check_name,
    parse_duration_s,
)

# A definition with bad lines is refused whole; this many of them are named in the message.
_SHOWN_REJECTIONS = 5


class SyncNotFoundError(InputError):
    """No sync of that name."""


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """What `syncs create` (CLI or HTTP) asks for, before validation."""

    name: str
    source: SyncSource
    lines: Iterable[tuple[int, str | InputError]] | None = None  # --ids / --names
    query_text: str | None = None  # --query (a JSON body as text)
    query_body: object = None  # HTTP: the body already parsed
    max_age: str | float | None = None
    every: str | float | None = None
    credits_per_day: int | None = None
    webhooks: bool = False
    sweep_check: bool = True


def _duration(value: str | float | None, default_s: float, what: str) -> float:
    if value is None:
        return default_s
    if isinstance(value, bool):
        raise InputError(f"{what}: expected a duration like 7d, got {value!r}")
    if isinstance(value, int | float):
        return check_duration_s(float(value), what, value)
    return parse_duration_s(value, what)


def build_sync(request: SyncRequest) -> tuple[Sync, list[tuple[str, int | None]]]:
    """Validate a request into a sync and its members; raises InputError, writes nothing."""
    check_name(request.name)
    sync = Sync(
        name=request.name,
        source=request.source,
        max_age_s=_duration(request.max_age, DEFAULT_MAX_AGE_S, "--max-age"),
        every_s=_duration(request.every, DEFAULT_EVERY_S, "--every"),
        credits_per_day=request.credits_per_day,
        webhooks=request.webhooks,
        sweep_check=request.sweep_check,
    )
    members: list[tuple[str, int | None]] = []
    if request.source is SyncSource.QUERY:
        sync.query_json = json.dumps(_query_body(request), sort_keys=True)
    else:
        members = _members(request)
    sync.validate()
    return sync, members


def _query_body(request: SyncRequest) -> dict[str, Any]:
    if request.query_text is not None:
        if not request.query_text.strip():
            raise InputError("the query file is empty")
        body = parse_search_body(request.query_text)
    else:
        body = validate_search_body(request.query_body)
    if not isinstance(body.get("query"), dict) or not body["query"]:
        raise InputError("the query body needs a non-empty `query` object")
    return body


def _members(request: SyncRequest) -> list[tuple[str, int | None]]:
    kind: InputKind = "ids" if request.source is SyncSource.IDS else "names"
    members: dict[str, int | None] = {}
    rejected: list[Rejected] = []
    for record in _parsed(request.lines or (), kind):
        if isinstance(record, Rejected):
            rejected.append(record)
        else:
            key = record.key
            members[key] = int(key.split(":", 1)[1]) if key.startswith("id:") else None
    if rejected:
        shown = "; ".join(str(r) for r in rejected[:_SHOWN_REJECTIONS])
        more = f" (and {len(rejected) - _SHOWN_REJECTIONS} more)" if len(rejected) > _SHOWN_REJECTIONS else ""
        raise InputError(f"{len(rejected)} bad {kind} line(s), nothing saved: {shown}{more}")
    if not members:
        raise InputError(f"the {kind} list is empty: a sync needs at least one member")
    return list(members.items())


def _parsed(lines: Iterable[tuple[int, str | InputError]], kind: InputKind) -> Iterator[Item | Rejected]:
    """parse_lines, one line at a time: a value URL parsing chokes on is that line's rejection."""
    for number, text in lines:
        try:
            yield from parse_lines([(number, text)], kind)
        except ValueError as exc:
            yield Rejected(number, text if isinstance(text, str) else "", f"not a name or profile URL: {exc}")


async def create_sync(services: Services, request: SyncRequest) -> Sync:
    return await save_sync(services, *build_sync(request))


async def save_sync(services: Services, sync: Sync, members: list[tuple[str, int | None]]) -> Sync:
    """Store a definition `build_sync` accepted (the CLI builds it before it connects to anything)."""
    await services.store.syncs.create(sync, members)
    return sync


async def get_sync(services: Services, name: str) -> Sync:
    sync = await services.store.syncs.get(name)
    if sync is None:
        raise SyncNotFoundError(f"no sync named {name!r}")
    return sync


async def list_syncs(services: Services) -> list[Sync]:
    return await services.store.syncs.list_all()


async def sync_view(services: Services, sync: Sync) -> dict[str, Any]:
    """A sync as `syncs list/show` and `/v1/syncs` show it: the definition and bookkeeping, and its
    webhook subscriptions (ids, status, expiry) with their state."""
    return {**sync.as_dict(), **await webhook_view(services, sync)}


async def set_sync_state(services: Services, name: str, state: SyncState) -> Sync:
    """Pause stops new ticks (a run in flight finishes); resume makes it due at once."""
    await get_sync(services, name)
    await services.store.syncs.set_state(name, state)
    if state is SyncState.ACTIVE:
        await services.store.syncs.make_due(name, utcnow())
    return await get_sync(services, name)


async def delete_sync(services: Services, name: str) -> None:
    """The definition and its members go now; its webhook subscriptions go upstream at the
    renewer's next pass (`jobs.subscriptions.reap_orphaned`: this process may have no API key)."""
    if not await services.store.syncs.delete(name):
        raise SyncNotFoundError(f"no sync named {name!r}")


async def run_now(services: Services, name: str) -> Sync:
    """Make the sync due now: the scheduler's next tick (within a second or two) plans it."""
    await get_sync(services, name)
    await services.store.syncs.make_due(name, utcnow())
    return await get_sync(services, name)
