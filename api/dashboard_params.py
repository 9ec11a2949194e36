"""What the dashboard's JSON endpoints share: strict query parameters, page limits, keyset cursors,
and a few seconds of cache for the aggregates that need not be exact to the second."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from api.validation import invalid_parameter, parse_run_id, preview
from worker.run_model import RunState
from worker.runtime import Services

LETTERS_LIMIT_DEFAULT, LETTERS_LIMIT_MAX = 25, 200
_DIGITS = re.compile(r"[0-9]{1,19}")


class TtlCache:
    """A few seconds of memory for the aggregates that do not need to be exact to the second."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Any]] = {}

    async def get(self, name: str, ttl_s: float, compute: Callable[[], Awaitable[Any]]) -> Any:
        now = time.monotonic()
        hit = self._entries.get(name)
        if hit is not None and now - hit[0] < ttl_s:
            return hit[1]
        value = await compute()
        self._entries[name] = (now, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


CACHE = web.AppKey("dashboard_cache", TtlCache)
RUN_STATES_CACHE_S = 5.0


async def runs_by_state(app: web.Application, services: Services) -> dict[RunState, int]:
    """Runs per state, at most RUN_STATES_CACHE_S old: the fleet figures show them and a runs
    page's ETAs divide the rate by the running ones (one aggregate per 5 s, not a count per page)."""
    counts: dict[RunState, int] = await app[CACHE].get(
        "runs_by_state", RUN_STATES_CACHE_S, services.store.runs.count_runs_by_state
    )
    return counts


def only_parameters(query: MultiMapping[str], allowed: tuple[str, ...]) -> None:
    for name in query:
        if name not in allowed:
            raise invalid_parameter(
                f"unknown query parameter {preview(name)!r}; expected {', '.join(allowed)}"
            )
        if len(query.getall(name)) > 1:
            raise invalid_parameter(f"query parameter {preview(name)!r} given more than once")


def optional_run_id(text: str | None) -> str | None:
    return None if text is None else parse_run_id(text)


def page_limit(text: str | None, default: int = LETTERS_LIMIT_DEFAULT, most: int = LETTERS_LIMIT_MAX) -> int:
    if text is None:
        return default
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= most:
        raise invalid_parameter(f"limit must be an integer from 1 to {most}")
    return int(text)


# `<time in µs since the epoch>-<id as hex>`: every string of this shape is a position in a
# newest-first order (the document can say exactly which cursors are valid). Dead letters, data
# requests and subscriptions page this way.
POSITION_CURSOR_PATTERN = "^[0-9]{1,17}-([0-9a-f]{2}){1,600}$"
_POSITION_CURSOR = re.compile(POSITION_CURSOR_PATTERN)


def encode_position(at: datetime, row_id: str) -> str:
    at_us = round(at.timestamp() * 1_000_000)
    return f"{at_us}-{row_id.encode().hex()}"


def decode_position(text: str | None) -> tuple[datetime, str] | None:
    if text is None:
        return None
    if not _POSITION_CURSOR.fullmatch(text):
        raise invalid_parameter("invalid cursor; pass next_cursor from the previous page unchanged")
    at_us, _, hex_id = text.partition("-")
    # Bytes that are not UTF-8 still name a position (between the real ids around it).
    row_id = bytes.fromhex(hex_id).decode("utf-8", "replace")
    return datetime.fromtimestamp(int(at_us) / 1_000_000, UTC), row_id
