"""The items of `employee_ids` / `shorthand_names`: their JSON types, and whether any of them is usable.

Two levels, as the OpenAPI document states them:
- an item of the wrong JSON type (an object, an array, null, a boolean, a non-integral number; for
  names anything but a string) makes the request malformed: 400, like any other type error;
- an item of the right type that is not an id or a name (`"abc"`, `0`, `"x"`) is rejected on its own
  with its index, and the rest of the run goes ahead; if *no* item is usable, no run is created (422).

JSON does not tell 5 from 5.0 (JSON Schema calls both integers), so an integral number is an integer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from jobs.inputs import Item, Rejected, parse_lines
from jobs.producers import list_as_lines  # the producer's own item rules, so this check cannot drift from it

ListKind = Literal["ids", "names"]
Value = int | str


def typed_items(field: str, kind: ListKind, values: Sequence[object]) -> tuple[list[Value], list[str]]:
    """The items as the producer takes them, and one sentence per item of the wrong JSON type."""
    expected = "an integer or a string" if kind == "ids" else "a string"
    typed: list[Value] = []
    problems: list[str] = []
    for index, value in enumerate(values):
        item = as_value(value, kind)
        if item is None:
            problems.append(f"{field}[{index}] must be {expected}, not {json_type(value)}")
        else:
            typed.append(item)
    return typed, problems


def as_value(value: object, kind: ListKind) -> Value | None:
    """The item as the producer takes it, or None if its JSON type is wrong for the list."""
    if isinstance(value, str):
        return value
    if kind == "names" or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def rejected_if_none_usable(kind: ListKind, values: Sequence[Value]) -> list[Rejected] | None:
    """Every item's rejection when no item is usable; None as soon as one is (the run goes ahead)."""
    rejected: list[Rejected] = []
    for result in parse_lines(list_as_lines(values), kind):
        if isinstance(result, Item):
            return None
        rejected.append(result)
    # parse_lines skips nothing here: list_as_lines turns blank and '#' items into rejections first.
    return rejected


def json_type(value: object) -> str:
    """A JSON value's type as a message names it ("an object", "a decimal number")."""
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int():
            return "an integer"
        case float():
            return "a decimal number"
        case str():
            return "a string"
        case list():
            return "an array"
        case dict():
            return "an object"
    return type(value).__name__
