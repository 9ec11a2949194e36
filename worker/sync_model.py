"""A sync: a saved, named definition that keeps part of the mirror within a maximum age.

Its record lives in MongoDB (written only by `worker.store.syncs`); the scheduler (`jobs.scheduler`)
turns each due sync into an ordinary run of kind `sync`. Membership is the id/name list given at
creation, or for a query sync the profiles the query matched (new matches join; profiles that stop
matching are marked `matching: false`, never deleted).

Durations are written `<number><unit>` with unit s, m, h or d (`90s`, `6h`, `7d`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from worker.errors import InputError
from worker.run_model import utcnow

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([a-zA-Z]*)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

DEFAULT_MAX_AGE_S = 7 * 86_400
DEFAULT_EVERY_S = 6 * 3600
MAX_DURATION_S = 3650 * 86_400  # ten years: due times stay representable
MAX_CREDITS_PER_DAY = 10**12  # far above any plan; keeps the number inside MongoDB's 64-bit integers


def parse_duration_s(text: str, what: str) -> float:
    """`7d` → 604800. Refuses unknown units and non-positive values with a message naming `what`."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(f"{what}: {text!r} is not a duration like 90s, 15m, 6h or 7d")
    number, unit = match.groups()
    if unit.lower() not in _UNITS_S:
        shown = unit or "(none)"
        raise InputError(f"{what}: unknown duration unit {shown!r} in {text!r}; use s, m, h or d")
    return check_duration_s(float(number) * _UNITS_S[unit.lower()], what, text)


def check_duration_s(seconds: float, what: str, shown: object) -> float:
    if not 0 < seconds <= MAX_DURATION_S:
        raise InputError(f"{what}: must be more than zero and at most 3650d, got {shown!r}")
    return seconds


def format_duration(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        size = _UNITS_S[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InputError(
            f"sync name {name!r}: use 1-64 characters a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class SyncSource(StrEnum):
    IDS = "ids"
    NAMES = "names"
    QUERY = "query"


class SyncState(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


@dataclass(slots=True)
class Sync:
    """The definition plus the scheduler's bookkeeping (due time, watermark, the run in flight)."""

    name: str
    source: SyncSource
    max_age_s: float = DEFAULT_MAX_AGE_S
    every_s: float = DEFAULT_EVERY_S
    credits_per_day: int | None = None
    # Webhook notices refresh members between ticks: the scheduler keeps subscriptions for the
    # sync's selection (`jobs.sync_webhooks`); the sweep still covers what notices miss.
    webhooks: bool = False
    # Before re-collecting a member that is due, ask the API (one search per 300 ids) whether its
    # last_updated moved; an unchanged one is confirmed fresh (`verified_at`) without a collect.
    sweep_check: bool = True
    query_json: str | None = None  # a query sync's ES-DSL body, as text (field paths contain dots)
    state: SyncState = SyncState.ACTIVE
    created_at: datetime = field(default_factory=utcnow)
    members: int = 0
    next_due_at: datetime = field(default_factory=utcnow)
    last_tick_at: datetime | None = None
    current_run_id: str | None = None
    # Query syncs: last_updated (the API's own clock) up to which every change is in the mirror.
    watermark: str | None = None
    sweep_paused_reason: str | None = None  # set when the credit budget cut this period's sweep
    last_plan: dict[str, Any] = field(default_factory=dict)  # what the last tick planned, for status
    webhook_error: str | None = None  # why its subscriptions could not be made (retried each tick)

    def validate(self) -> None:
        check_name(self.name)
        if self.max_age_s < self.every_s:
            raise InputError(
                f"--max-age ({format_duration(self.max_age_s)}) is shorter than --every "
                f"({format_duration(self.every_s)}): profiles would go over max-age between ticks"
            )
        if self.credits_per_day is not None and not 1 <= self.credits_per_day <= MAX_CREDITS_PER_DAY:
            raise InputError(
                f"--credits-per-day must be 1..{MAX_CREDITS_PER_DAY}, got {self.credits_per_day}"
            )
        if self.source is SyncSource.QUERY and not self.query_json:
            raise InputError("a query sync needs a query")

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source.value,
            "state": self.state.value,
            "max_age": format_duration(self.max_age_s),
            "max_age_s": self.max_age_s,
            "every": format_duration(self.every_s),
            "every_s": self.every_s,
            "credits_per_day": self.credits_per_day,
            "webhooks": self.webhooks,
            "sweep_check": self.sweep_check,
            "members": self.members,
            "created_at": self.created_at.isoformat(),
            "next_due_at": self.next_due_at.isoformat(),
            "last_tick_at": None if self.last_tick_at is None else self.last_tick_at.isoformat(),
            "current_run_id": self.current_run_id,
            "watermark": self.watermark,
            "sweep_paused_reason": self.sweep_paused_reason,
            "last_plan": dict(self.last_plan),
            "webhook_error": self.webhook_error,
        }
