"""Parsing producer input: employee ids, shorthand names and profile URLs. Pure functions.

Every input becomes an *item key*: `id:<employee id>` or `name:<shorthand name>`. Bad lines become
`Rejected` records naming the line number and the reason; good lines are never dropped because a
neighbour was bad.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal
from urllib.parse import unquote, urlsplit

from worker.errors import InputError

InputKind = Literal["ids", "names"]

MAX_LINE_BYTES = 4096
MAX_EMPLOYEE_ID = 2**63 - 1  # Coresignal ids are ES longs
_ID = re.compile(r"[0-9]+")
# LinkedIn public identifiers: 3-100 letters (any script), digits, '-' or '_'.
_SHORTHAND = re.compile(r"[\w-]{3,100}")
_PROFILE_HOSTS = ("linkedin.com",)


@dataclass(frozen=True, slots=True)
class Item:
    line: int
    key: str


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    value: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.value!r}"


def parse_employee_id(text: str) -> int:
    value = text.strip()
    if not _ID.fullmatch(value):
        raise InputError("not a positive integer employee id")
    number = int(value)
    if number < 1 or number > MAX_EMPLOYEE_ID:
        raise InputError(f"employee id out of range (1..{MAX_EMPLOYEE_ID})")
    return number


def normalise_name(text: str) -> str:
    """A shorthand name or a profile URL → the lower-case shorthand name."""
    value = text.strip()
    if "/" in value or value.lower().startswith(("http:", "https:", "www.", "linkedin.com")):
        value = _slug_from_url(value)
    value = unquote(value).lower()
    if not _SHORTHAND.fullmatch(value) or value.strip("-_") == "":
        raise InputError("not a shorthand name (3-100 letters, digits, '-' or '_') or profile URL")
    return value


def _slug_from_url(url: str) -> str:
    try:
        parts = urlsplit(url if "://" in url else f"https://{url}")
        host = (parts.hostname or "").lower()
    except ValueError as exc:  # e.g. "Invalid IPv6 URL" for a stray '[': a bad line, not a crash
        raise InputError(f"not a profile URL ({exc})") from exc
    if not any(host == h or host.endswith("." + h) for h in _PROFILE_HOSTS):
        raise InputError("not a linkedin.com profile URL")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2 or segments[0] != "in":
        raise InputError("profile URL has no /in/<name> path")
    return segments[1]


def parse_item(text: str, kind: InputKind) -> str:
    if kind == "ids":
        return f"id:{parse_employee_id(text)}"
    return f"name:{normalise_name(text)}"


def parse_lines(lines: Iterable[tuple[int, str | InputError]], kind: InputKind) -> Iterator[Item | Rejected]:
    """Lines are (number, text or why it is unreadable). Blank lines and # comments are skipped."""
    for number, text in lines:
        if isinstance(text, InputError):
            yield Rejected(number, "", str(text))
            continue
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            yield Item(number, parse_item(stripped, kind))
        except InputError as exc:
            yield Rejected(number, _preview(stripped), str(exc))


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, str | InputError]]:
    """Stream numbered lines with bounded memory; an over-long line is reported, not loaded."""
    number = 0
    while True:
        raw = stream.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):  # skip the rest of the long line
                raw = stream.readline(MAX_LINE_BYTES)
            yield number, InputError(f"line longer than {MAX_LINE_BYTES} bytes")
            continue
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            yield number, InputError("line is not valid UTF-8 text")


def _preview(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def collect_key_of(item_key: str) -> str:
    """The collect endpoint's {key}: the id or the shorthand name."""
    return item_key.split(":", 1)[1]


def employee_id_of(item_key: str) -> int | None:
    kind, _, value = item_key.partition(":")
    return int(value) if kind == "id" else None
