"""The list cursor of GET /v1/runs: a position in the newest-first order, `<created_at µs>-<run id>`.

Pages are keyset pages (runs created before the position, ties broken by run id), so *every* cursor
of this shape is a position the API can serve: one it never handed out just starts a page there. That
makes the document's pattern the whole rule, which an opaque base64 token could not be (most
base64 text decodes to no position at all). The positions are translated to and from run control's
own cursor here, at the edge, so jobs/ keeps its format.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from jobs.runs import decode_cursor, encode_cursor

# 17 digits of microseconds since 1970 reach the year 5138: every match is a valid datetime.
CURSOR_PATTERN = r"^[0-9]{1,17}-[0-9a-f]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN.removeprefix("^").removesuffix("$"))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def is_cursor(text: str) -> bool:
    return _CURSOR.fullmatch(text) is not None


def to_control(cursor: str) -> str:
    """An API cursor (already checked with `is_cursor`) as run control's cursor."""
    micros, _, run_id = cursor.partition("-")
    return encode_cursor(_EPOCH + int(micros) * _MICROSECOND, run_id)


def from_control(cursor: str | None) -> str | None:
    if cursor is None:
        return None
    created_at, run_id = decode_cursor(cursor)
    if created_at.tzinfo is None:  # MongoDB's datetimes are UTC, with or without tzinfo
        created_at = created_at.replace(tzinfo=UTC)
    return f"{(created_at - _EPOCH) // _MICROSECOND}-{run_id}"
