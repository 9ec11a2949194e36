"""What a request may say: the body of POST /v1/runs, the list query, the ids in paths.

Request-level problems (wrong types, of a field or of a list item; both or none of the input kinds;
unknown fields; too many items) are refused whole with a 4xx naming the field. An item of the right
type that is not an id or a name is not a request error: it is passed on, and comes back in `rejected`
with its index (api.items; a list with no usable item at all is a 422, in api.routes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from multidict import MultiMapping
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from api.cursor import is_cursor
from api.errors import ApiError
from api.items import ListKind, Value, json_type, typed_items
from jobs.inputs import MAX_EMPLOYEE_ID
from jobs.runs import RUN_STATES

# Far above any real search (the API pages 1,000 ids at a time) and well inside a BSON int64.
MAX_PROFILES = 1_000_000_000
LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 50, 200
MAX_PROBLEMS = 10  # listed per refused body: a body with 10,000 unknown keys gets a short answer
LIST_PARAMETERS = ("state", "limit", "cursor")
LIST_KINDS: Mapping[str, ListKind] = {"employee_ids": "ids", "shorthand_names": "names"}
INPUT_KINDS = ("employee_ids", "shorthand_names", "search")
_RUN_ID = re.compile(r"[0-9a-f]{32}")  # jobs.runs.new_run_id: uuid4().hex
_DIGITS = re.compile(r"[0-9]{1,25}")


class RunRequest(BaseModel):
    """The body of POST /v1/runs. Strict: `"5"` is not an integer and `true` is not 1."""

    model_config = ConfigDict(extra="forbid", strict=True)

    employee_ids: list[Any] | None = None
    shorthand_names: list[Any] | None = None
    search: dict[str, Any] | None = None
    max_profiles: Annotated[int, Field(ge=1, le=MAX_PROFILES)] | None = None
    via: Literal["auto", "collect", "bulk"] | None = None


@dataclass(frozen=True, slots=True)
class ListRun:
    field: str
    kind: ListKind
    values: list[Value]
    via: str | None = None  # None: a plain collect run (no planner)


@dataclass(frozen=True, slots=True)
class SearchRun:
    body: dict[str, Any]
    max_profiles: int | None
    via: str | None = None


def parse_run_request(value: object, max_items: int) -> ListRun | SearchRun:
    if not isinstance(value, dict):
        raise invalid_body(f"the body must be a JSON object, not {json_type(value)}")
    try:
        request = RunRequest.model_validate(_integral_max_profiles(value))
    except ValidationError as exc:
        raise _refused([_human(error) for error in exc.errors()], exc.error_count()) from exc
    if "via" in request.model_fields_set and request.via is None:
        raise invalid_body("via must be one of auto, collect or bulk, not null; leave it out for collect")
    kinds = [name for name in INPUT_KINDS if name in request.model_fields_set]
    if len(kinds) != 1:
        found = "none" if not kinds else " and ".join(kinds)
        raise invalid_body(f"send exactly one of employee_ids, shorthand_names or search (got {found})")
    name = kinds[0]
    chosen = getattr(request, name)
    if chosen is None:
        raise invalid_body(f"{name} must be {_EXPECTED[name]}, not null")
    if name == "search":
        if "max_profiles" in request.model_fields_set and request.max_profiles is None:
            raise invalid_body("max_profiles must be an integer, not null; leave it out for no limit")
        return SearchRun(chosen, request.max_profiles, request.via)
    if name == "shorthand_names" and request.via == "bulk":
        raise invalid_body("shorthand_names stay on collect: via bulk takes employee_ids or search")
    if "max_profiles" in request.model_fields_set:
        raise invalid_body("max_profiles applies to search runs only")
    if not chosen:
        raise invalid_body(f"{name} is empty; send at least one item")
    if len(chosen) > max_items:
        message = f"{name} has {len(chosen)} items; at most {max_items} per request (API_MAX_ITEMS)"
        raise ApiError(413, "too_large", message, {"limit_items": max_items, "items": len(chosen)})
    kind = LIST_KINDS[name]
    values, problems = typed_items(name, kind, chosen)
    if problems:
        raise _refused(problems[:MAX_PROBLEMS], len(problems))
    return ListRun(name, kind, values, request.via)


def _integral_max_profiles(body: dict[str, Any]) -> dict[str, Any]:
    """JSON has one number type: `954.0` is the integer 954 (JSON Schema agrees); `954.5` is not."""
    value = body.get("max_profiles")
    if isinstance(value, float) and value.is_integer():
        return {**body, "max_profiles": int(value)}
    return body


def _refused(problems: list[str], count: int) -> ApiError:
    """400 naming the first MAX_PROBLEMS problems: a body with 10,000 of them gets a short answer."""
    listed = problems[:MAX_PROBLEMS]
    if count > MAX_PROBLEMS:
        listed.append(f"and {count - MAX_PROBLEMS} more problems")
    return invalid_body("; ".join(listed), {"problems": listed})


_EXPECTED = {
    "employee_ids": "a JSON array",
    "shorthand_names": "a JSON array",
    "search": "a JSON object (an ES-DSL body)",
    "max_profiles": "an integer",
    "via": "one of auto, collect or bulk",
}


def _human(error: ErrorDetails) -> str:
    """pydantic's error as a sentence about the JSON the client sent."""
    field = ".".join(str(part) for part in error["loc"]) or "body"
    kind = error["type"]
    if kind == "extra_forbidden":
        expected = "employee_ids, shorthand_names or search, and max_profiles"
        return f"unknown field {preview(field)!r} (expected {expected})"
    if kind in {"greater_than_equal", "less_than_equal"}:
        return f"{field} must be between 1 and {MAX_PROFILES}"
    if field in _EXPECTED:
        return f"{field} must be {_EXPECTED[field]}, not {json_type(error.get('input'))}"
    return f"{field}: {error['msg']}"


def preview(text: str, limit: int = 60) -> str:
    """Client text quoted back in a message, cut short: a message must stay a sentence."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def invalid_body(message: str, details: object = None) -> ApiError:
    return ApiError(400, "invalid_body", message, details)


def invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


@dataclass(frozen=True, slots=True)
class ListQuery:
    state: str | None
    limit: int
    cursor: str | None


def parse_list_query(query: MultiMapping[str]) -> ListQuery:
    for name in query:
        if name not in LIST_PARAMETERS:
            raise invalid_parameter(
                f"unknown query parameter {preview(name)!r}; expected state, limit or cursor"
            )
        if len(query.getall(name)) > 1:
            raise invalid_parameter(f"query parameter {preview(name)!r} given more than once")
    state, limit, cursor = query.get("state"), query.get("limit"), query.get("cursor")
    if state is not None and state not in RUN_STATES:
        raise invalid_parameter(f"unknown state {preview(state)!r}; one of {', '.join(RUN_STATES)}")
    if cursor is not None and not is_cursor(cursor):
        raise invalid_parameter("invalid cursor; pass next_cursor from the previous page unchanged")
    return ListQuery(state, _limit(limit), cursor)


def _limit(text: str | None) -> int:
    if text is None:
        return LIST_LIMIT_DEFAULT
    if not _DIGITS.fullmatch(text) or not 1 <= int(text) <= LIST_LIMIT_MAX:
        raise invalid_parameter(f"limit must be an integer from 1 to {LIST_LIMIT_MAX}, not {preview(text)!r}")
    return int(text)


def parse_run_id(text: str) -> str:
    if not _RUN_ID.fullmatch(text):
        raise invalid_parameter(f"run id must be 32 lower-case hex characters, not {preview(text)!r}")
    return text


def parse_employee_id(text: str) -> int:
    if not _DIGITS.fullmatch(text):
        raise invalid_parameter(f"employee id must be a positive integer, not {preview(text)!r}")
    number = int(text)
    if not 1 <= number <= MAX_EMPLOYEE_ID:
        raise invalid_parameter(f"employee id out of range (1..{MAX_EMPLOYEE_ID}): {preview(text)}")
    return number
