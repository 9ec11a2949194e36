"""One page of es_dsl search results, with the `x-next-page-after` cursor (spec §3.3).

Pure: the handler scans the population with a `CompiledQuery`, hands every match here as
`(id, score, last_updated)` and turns the `Page` into a body and headers. `page` sorts on every
call; a caller that serves many pages of one result sorts once with `sort_matches` and pages
the sorted list with `page_sorted`, which costs O(log n + items_per_page).

A cursor means "strictly after this sort key", like ES's `search_after`, so it stays correct when
the result set is re-evaluated between pages. Its text follows the vendor's examples:

- sort id:       `25828893`
- default sort:  `"2025-03-15T00:00:00.000Z",25828893`  (last_updated, id)
- sort _score:   `26.806067,"2025-02-25",6428995`       (score, last_updated, id)

The _score cursor carries last_updated because the vendor's does, but the order is score then id.
A profile without a parseable last_updated writes `null` there and sorts after every date.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from simulator.dsl import QueryError
from simulator.dsl_values import parse_date

__all__ = [
    "MAX_ITEMS_PER_PAGE",
    "Match",
    "Page",
    "clamp_items_per_page",
    "page",
    "page_sorted",
    "sort_matches",
]

type Match = tuple[int, float, str | None]  # (id, score, last_updated) of one matching profile
type SortKey = tuple[Any, ...]

MAX_ITEMS_PER_PAGE = 1000
_INTEGER = re.compile(r"(-?)0*(\d+)")
_UNDATED = (1, datetime.min.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class Page:
    ids: list[int]
    next_after: str | None  # None on the last page and for an empty result
    total_results: int
    total_pages: int


def clamp_items_per_page(raw: str | None) -> int:
    """The `items_per_page` query parameter: default and maximum 1000, larger values clamped."""
    if raw is None:
        return MAX_ITEMS_PER_PAGE
    parsed = _INTEGER.fullmatch(raw)
    if parsed is None or parsed[1] or parsed[2] == "0":
        raise QueryError(400, f"items_per_page must be a positive integer, got {raw!r}")
    # Compared by length first so a 5000-digit value never reaches int().
    digits = parsed[2]
    return MAX_ITEMS_PER_PAGE if len(digits) > 4 else min(int(digits), MAX_ITEMS_PER_PAGE)


def page(matches: Sequence[Match], sort: str, after: str | None, items_per_page: int) -> Page:
    return page_sorted(sort_matches(matches, sort), sort, after, items_per_page)


def sort_matches(matches: Sequence[Match], sort: str) -> list[Match]:
    """The matches in the order pages list them."""
    return sorted(matches, key=_sort_key(sort))


def page_sorted(ordered: Sequence[Match], sort: str, after: str | None, items_per_page: int) -> Page:
    """`page` of matches already in `sort_matches(..., sort)` order."""
    if items_per_page < 1:
        raise ValueError(f"items_per_page must be positive, got {items_per_page}")
    key = _sort_key(sort)
    start = 0 if after is None else bisect_right(ordered, _cursor_key(after, sort), key=key)
    chunk = ordered[start : start + items_per_page]
    has_more = start + len(chunk) < len(ordered)
    return Page(
        ids=[match[0] for match in chunk],
        next_after=_encode_cursor(chunk[-1], sort) if has_more and chunk else None,
        total_results=len(ordered),
        total_pages=math.ceil(len(ordered) / items_per_page),
    )


def _date_rank(last_updated: str | None) -> tuple[int, datetime]:
    moment = parse_date(last_updated)
    return _UNDATED if moment is None else (0, moment)


def _sort_key(sort: str) -> Callable[[Match], SortKey]:
    if sort == "id":
        return lambda match: (match[0],)
    if sort == "_score":
        return lambda match: (-match[1], match[0])
    if sort == "default":
        return lambda match: (_date_rank(match[2]), match[0])
    raise ValueError(f"unknown sort mode {sort!r}")


def _encode_cursor(match: Match, sort: str) -> str:
    employee_id, score, last_updated = match
    if sort == "id":
        return str(employee_id)
    # An unparseable date is written as null so that the cursor can always be read back.
    date = json.dumps(last_updated if parse_date(last_updated) is not None else None)
    if sort == "default":
        return f"{date},{employee_id}"
    # repr() is the shortest text that round-trips, so the boundary score compares exactly.
    return f"{float(score)!r},{date},{employee_id}"


_CURSOR_SHAPES: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "default": (str, int),
    "_score": (float, str, int),
}


def _cursor_key(after: str, sort: str) -> SortKey:
    values = _decode_cursor(after)
    shape = _CURSOR_SHAPES.get(sort, ())
    if len(values) != len(shape) or not all(map(_fits, values, shape)):
        raise QueryError(400, "invalid 'after' cursor")
    if sort == "id":
        return (values[0],)
    if sort == "_score":
        return (-values[0], values[2])
    return (_date_rank(values[0]), values[1])


def _decode_cursor(after: str) -> list[Any]:
    def reject(_constant: str) -> None:
        raise ValueError("NaN and Infinity are not sort values")

    try:
        values = json.loads(f"[{after}]", parse_constant=reject)
    except ValueError:
        raise QueryError(400, "invalid 'after' cursor") from None
    return values if isinstance(values, list) else []


def _fits(value: object, expected: type) -> bool:
    """Cursor part check: the date slot may be null, a score may be written as an int."""
    if isinstance(value, bool):
        return False
    if expected is float:
        return isinstance(value, int | float) and math.isfinite(value)
    if expected is str:
        return value is None or (isinstance(value, str) and parse_date(value) is not None)
    return isinstance(value, expected)
