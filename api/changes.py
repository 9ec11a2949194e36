"""GET /v1/changes: the change feed (jobs.changes), one page at a time with a cursor."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web
from multidict import MultiMapping

from api.errors import ApiError, json_response
from api.state import SERVICES
from api.validation import parse_employee_id, preview
from jobs.changes import DEFAULT_LIMIT, EVENT_TYPES, MAX_LIMIT, read_changes
from worker.errors import InputError

CHANGES_PARAMETERS = ("since", "employee_id", "type", "limit", "cursor")


def add_changes_routes(app: web.Application) -> None:
    app.router.add_get("/v1/changes", list_changes)


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def parse_since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad(f"since must be an ISO 8601 time, not {preview(text)!r}") from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad(f"limit must be an integer from 1 to {MAX_LIMIT}, not {preview(text)!r}")
    return int(text)


def _check(query: MultiMapping[str]) -> None:
    for name in query:
        if name not in CHANGES_PARAMETERS:
            raise _bad(f"unknown query parameter {preview(name)!r}; expected {', '.join(CHANGES_PARAMETERS)}")
        if len(query.getall(name)) > 1:
            raise _bad(f"query parameter {preview(name)!r} given more than once")


async def list_changes(request: web.Request) -> web.Response:
    query = request.query
    _check(query)
    since = query.get("since")
    employee = query.get("employee_id")
    event_type = query.get("type")
    cursor = query.get("cursor")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise _bad(f"unknown type {preview(event_type)!r}; one of {', '.join(EVENT_TYPES)}")
    try:
        page = await read_changes(
            request.app[SERVICES],
            since=None if since is None else parse_since(since),
            employee_id=None if employee is None else parse_employee_id(employee),
            event_type=event_type,
            limit=_limit(query.get("limit")),
            cursor=cursor,
        )
    except InputError as exc:
        raise _bad(f"{exc}; pass next_cursor from the previous page unchanged") from exc
    return json_response(page.as_dict())
