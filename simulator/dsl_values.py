"""Value coercions for the es_dsl compiler: text analysis, numbers, dates (with `now` math), globs.

Every function here returns None for a value it cannot interpret instead of raising, so the same
helper serves documents (where an odd value simply does not match) and queries (where the caller
turns None into a 400 naming the clause).
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import Enum
from functools import lru_cache

_TOKEN = re.compile(r"\w+")
_YEAR_OR_MONTH = re.compile(r"(\d{4})(?:-(\d{2}))?")
_DATE_MATH = re.compile(r"now((?:[+-]\d{1,9}[yMwdhHms])*)")
_DATE_MATH_STEP = re.compile(r"([+-])(\d+)([yMwdhHms])")
_FIXED_UNITS = {
    "w": "weeks",
    "d": "days",
    "h": "hours",
    "H": "hours",
    "m": "minutes",
    "s": "seconds",
}


@lru_cache(maxsize=65_536)
def analyse(text: str) -> tuple[str, ...]:
    """Approximates ES's `standard` analyser: lowercase word tokens, punctuation dropped.

    Cached because a search scans the whole population and sees the same strings again and again.
    """
    return tuple(_TOKEN.findall(text.lower()))


def value_tokens(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return analyse(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return analyse(str(value))
    return ()


def as_number(value: object) -> int | float | None:
    # JSON booleans are not numbers to ES: a `true` against a byte field is a parse error.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def as_keyword(value: object) -> str | None:
    """The string ES would index for a keyword field (numbers and booleans are stringified)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def parse_date(value: object) -> datetime | None:
    """`strict_date_optional_time||epoch_millis`: "2024", "2024-01", ISO dates/datetimes, millis.

    Missing components default to the start of the period and naive times are UTC, as in ES.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    return _parse_date_text(value) if isinstance(value, str) else None


@lru_cache(maxsize=65_536)
def _parse_date_text(text: str) -> datetime | None:
    # Cached: a range filter on last_updated parses every profile's date on every search.
    partial = _YEAR_OR_MONTH.fullmatch(text)
    try:
        if partial:
            return datetime(int(partial[1]), int(partial[2] or 1), 1, tzinfo=UTC)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date_bound(value: object, now: datetime) -> datetime | None:
    """A date in a query: anything `parse_date` accepts, or date math such as "now-1y-2d"."""
    if not isinstance(value, str) or not value.startswith("now"):
        return parse_date(value)
    math_expr = _DATE_MATH.fullmatch(value)
    if math_expr is None:
        return None
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    try:
        for sign, amount, unit in _DATE_MATH_STEP.findall(math_expr[1]):
            moment = _shift(moment, int(amount) * (-1 if sign == "-" else 1), unit)
    except (OverflowError, ValueError):
        return None
    return moment


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in _FIXED_UNITS:
        return moment + timedelta(**{_FIXED_UNITS[unit]: amount})
    months = amount * 12 if unit == "y" else amount
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    # Like java.time's plusMonths: Jan 31 + 1M is the last day of February, not an error.
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


class _Wild(Enum):
    ANY = "?"
    STAR = "*"


def compile_glob(pattern: str, *, fold: bool) -> Callable[[str], bool]:
    """ES wildcard syntax (`*`, `?`, backslash escapes) as a whole-string matcher.

    Matched with the linear-backtracking algorithm rather than `re`, whose backtracking on
    patterns like `*a*a*a*b` is polynomial in the number of stars.
    """
    items: list[str | _Wild] = []
    escaped = False
    for char in pattern.lower() if fold else pattern:
        if escaped or char not in "*?\\":
            items.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif not (char == "*" and items and items[-1] is _Wild.STAR):
            items.append(_Wild.ANY if char == "?" else _Wild.STAR)
    return lambda text: _glob(items, text.lower() if fold else text)


def _glob(items: list[str | _Wild], text: str) -> bool:
    p = i = 0
    star, resume = -1, 0
    while i < len(text):
        if p < len(items) and (items[p] is _Wild.ANY or items[p] == text[i]):
            p, i = p + 1, i + 1
        elif p < len(items) and items[p] is _Wild.STAR:
            star, resume = p, i
            p += 1
        elif star >= 0:
            # Let the last star swallow one more character and retry from there.
            resume += 1
            p, i = star + 1, resume
        else:
            return False
    return all(item is _Wild.STAR for item in items[p:])
