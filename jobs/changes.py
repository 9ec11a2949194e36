"""Reading the change feed: pages in a stable order with an opaque cursor (see worker.store.changes).

The cursor names the last event a page served (its sequence number), so the next page starts
right after it whatever arrived meanwhile; an empty page hands the same cursor back, which is
what `--follow` polls with. Filters (`since`, `employee_id`, `type`) must be repeated with the
cursor: they narrow which events are served, the cursor says where the reader is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from worker.change_events import EventType
from worker.errors import InputError
from worker.runtime import Services
from worker.store.changes import as_event

EVENT_TYPES: tuple[str, ...] = get_args(EventType.__value__)
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ChangesPage:
    changes: list[dict[str, Any]]
    next_cursor: str
    has_more: bool

    def as_dict(self) -> dict[str, Any]:
        return {"changes": self.changes, "next_cursor": self.next_cursor, "has_more": self.has_more}


# The cursor is the sequence number of the last event served: every string of this shape is a
# position in the feed (so the API's document can say exactly which cursors are valid).
CURSOR_PATTERN = "^[0-9]{1,18}$"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(seq: int) -> str:
    return str(seq)


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor):
        raise InputError("invalid cursor")
    return int(cursor)


async def read_changes(
    services: Services,
    *,
    since: datetime | None = None,
    employee_id: int | None = None,
    event_type: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ChangesPage:
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InputError(f"unknown event type {event_type!r}; one of {', '.join(EVENT_TYPES)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"limit must be 1..{MAX_LIMIT}")
    after = 0 if cursor is None else decode_cursor(cursor)
    docs, more = await services.store.changes.page(
        after_seq=after,
        limit=limit,
        settle_s=services.settings.changes_settle_s,
        since=since,
        employee_id=employee_id,
        event_type=event_type,
    )
    last = int(docs[-1]["_id"]) if docs else after
    return ChangesPage([as_event(doc) for doc in docs], encode_cursor(last), more)
