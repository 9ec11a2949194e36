"""The OpenAPI 3.1 description of the API, built in code and served at /openapi.json.

Built from the same constants the validators use (limits, run states), so the two cannot disagree;
tests/api/test_api_openapi.py checks that every route is documented and every documented route exists.
"""

from __future__ import annotations

from typing import Any

from api.auth import UNAUTHORIZED_MESSAGE
from api.cursor import CURSOR_PATTERN
from api.dashboard_openapi import dashboard_paths, dashboard_schemas
from api.request_schema import Schema, request_schemas
from api.request_schema import object_schema as _object
from api.syncs import sync_paths, sync_schemas
from api.validation import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from jobs.inputs import MAX_EMPLOYEE_ID
from jobs.runs import RUN_STATES


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(type_name: str, **extra: Any) -> Schema:
    return {"type": [type_name, "null"], **extra}


_COUNT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}


def _response_schemas() -> dict[str, Schema]:
    return {
        "Error": _object(
            {
                "error": _object(
                    {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
                    required=["code", "message", "details"],
                )
            },
            required=["error"],
        ),
        "Rejected": _object(
            {"index": _COUNT, "value": {"type": "string"}, "reason": {"type": "string"}},
            required=["index", "value", "reason"],
        ),
        "RunCreated": _object(
            {
                "run_id": {"type": "string"},
                "kind": {"type": "string", "enum": ["ids", "names", "search"]},
                "accepted": _COUNT,
                "duplicates": _COUNT,
                "rejected": {"type": "array", "items": _ref("Rejected")},
                "rejected_count": _COUNT,
            },
            required=["run_id", "kind", "accepted", "rejected"],
        ),
        "Run": _run_schema(),
        "RunPage": _object(
            {"runs": {"type": "array", "items": _ref("Run")}, "next_cursor": _nullable("string")},
            required=["runs", "next_cursor"],
        ),
        "Employee": _object(
            {"id": {"type": "integer"}, "profile": {"type": "object"}, "sync": _sync_schema()},
            required=["id", "profile", "sync"],
        ),
        "Status": _object({"status": {"type": "string"}}, required=["status"]),
    }


def _run_schema() -> Schema:
    counters = [
        "accepted", "rejected", "duplicates", "queued", "processed", "done", "inserted", "changed",
        "unchanged", "not_found", "failed", "shared", "skipped_fresh", "upstream_429", "retries",
    ]  # fmt: skip
    properties: dict[str, Schema] = {
        "run_id": {"type": "string"},
        "kind": {"type": "string", "enum": ["ids", "names", "search", "bulk", "sync"]},
        "state": {"type": "string", "enum": list(RUN_STATES)},
        "created_at": _nullable("string", format="date-time"),
        "finished_at": _nullable("string", format="date-time"),
        **{name: _COUNT for name in counters},
        "eta_s": _nullable("number", description="seconds to finish at this run's share of the budget"),
        "error": {"type": "string", "description": "why a failed run failed"},
        "query": _nullable("object", description="search runs: the ES-DSL body"),
        "max_profiles": _nullable("integer"),
        "pages_fetched": _COUNT,
        "total_results": _nullable("integer"),
        "ids_seen": _COUNT,
        "enqueued": _COUNT,
        "search_complete": {"type": "boolean"},
        "data_requests": {"type": "object", "description": "bulk runs: data requests by state"},
        "data_requests_attention": {
            "type": "array",
            "items": {"type": "object"},
            "description": "bulk runs: failed or unknown (maybe billed) data requests, with the reason",
        },
    }
    required = ["run_id", "kind", "state", "created_at", "finished_at", *counters]
    return _object(properties, required=required, closed=False)


def _sync_schema() -> Schema:
    times = ("synced_at", "changed_at", "first_seen_at", "deleted_at")
    properties: dict[str, Schema] = {name: _nullable("string", format="date-time") for name in times}
    return _object({**properties, "hash": {"type": "string"}, "run_id": {"type": "string"}}, closed=False)


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _error(description: str) -> Schema:
    return {"description": description, **_json(_ref("Error"))}


def _answer(description: str, schema_name: str) -> Schema:
    return {"description": description, **_json(_ref(schema_name))}


_ERRORS = {
    "400": "invalid_json, invalid_body or invalid_parameter",
    "401": f"unauthorized: {UNAUTHORIZED_MESSAGE}",
    "404": "run_not_found or employee_not_found",
    "409": "invalid_state: the run's state does not allow this",
    "413": "too_large: over API_MAX_BODY_BYTES or API_MAX_ITEMS",
    "422": "no_valid_items (no run created; details.rejected lists every item and why) or "
    "invalid_query (the search body is not a query the API accepts)",
    "500": "internal: a bug, logged with its traceback",
    "503": "unavailable: Redis or MongoDB is not answering",
}


def _operation(
    summary: str, ok: tuple[str, Schema], errors: str, *, public: bool = False, **extra: Any
) -> Schema:
    """One operation; `errors` lists its error statuses. Public ones need no token (and can't 401)."""
    statuses = errors.split()
    if public:
        extra["security"] = []
    else:
        statuses = ["401", *statuses, "500"]
    responses = {ok[0]: ok[1], **{status: _error(_ERRORS[status]) for status in statuses}}
    return {"summary": summary, "responses": responses, **extra}


_RUN_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
}
_EMPLOYEE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EMPLOYEE_ID},
}
_LIST_PARAMETERS = [
    {"name": "state", "in": "query", "schema": {"type": "string", "enum": list(RUN_STATES)}},
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": LIST_LIMIT_MAX, "default": LIST_LIMIT_DEFAULT},
    },
    {
        "name": "cursor",
        "in": "query",
        "description": "next_cursor of the previous page; any cursor of this shape is a position "
        "in the newest-first order (created_at in microseconds since 1970, then the run id)",
        "schema": {"type": "string", "pattern": CURSOR_PATTERN},
    },
]


def _control(verb: str, allowed: str) -> Schema:
    return {
        "post": _operation(
            f"{verb.capitalize()} a run ({allowed})",
            ("200", _answer("the run after the change", "Run")),
            "400 404 409 503",
            parameters=[_RUN_ID],
            operationId=f"{verb}Run",
        )
    }


def _paths() -> dict[str, Schema]:
    return {**_run_paths(), **_other_paths()}


def _run_paths() -> dict[str, Schema]:
    return {
        "/v1/runs": {
            "post": _operation(
                "Create a run from employee ids, shorthand names/profile URLs, or an ES-DSL search",
                ("202", _answer("the run was created; bad items are listed in rejected", "RunCreated")),
                "400 413 422 503",
                requestBody={"required": True, **_json(_ref("CreateRunRequest"))},
                operationId="createRun",
            ),
            "get": _operation(
                "List runs, newest first",
                ("200", _answer("one page of runs", "RunPage")),
                "400 503",
                parameters=_LIST_PARAMETERS,
                operationId="listRuns",
            ),
        },
        "/v1/runs/{id}": {
            "get": _operation(
                "A run's state and progress",
                ("200", _answer("the run", "Run")),
                "400 404 503",
                parameters=[_RUN_ID],
                operationId="getRun",
            )
        },
        "/v1/runs/{id}/pause": _control("pause", "running → paused; its queued jobs are taken out"),
        "/v1/runs/{id}/resume": _control("resume", "paused → running"),
        "/v1/runs/{id}/cancel": _control("cancel", "queued jobs are removed; in-flight ones finish"),
    }


def _other_paths() -> dict[str, Schema]:
    return {
        "/v1/employees/{id}": {
            "get": _operation(
                "A mirrored employee profile with its sync metadata",
                ("200", _answer("the mirrored document", "Employee")),
                "400 404 503",
                parameters=[_EMPLOYEE_ID],
                operationId="getEmployee",
            )
        },
        "/healthz": {
            "get": _operation(
                "Liveness: the process answers",
                ("200", _answer("up", "Status")),
                "",
                public=True,
                operationId="healthz",
            )
        },
        "/readyz": {
            "get": _operation(
                "Readiness: Redis and MongoDB answer",
                ("200", _answer("ready", "Status")),
                "503",
                public=True,
                operationId="readyz",
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics (text exposition format); needs the bearer token",
                ("200", {"description": "metrics", "content": {"text/plain": {"schema": _TEXT}}}),
                "503",
                operationId="metrics",
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document",
                ("200", {"description": "OpenAPI 3.1", **_json({"type": "object"})}),
                "",
                public=True,
                operationId="openapi",
            )
        },
    }


def build_openapi(*, max_items: int) -> dict[str, Any]:
    """The document for an API taking at most `max_items` items per list (API_MAX_ITEMS)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "employee-sync",
            "version": "1",
            "description": "Create and control sync runs of Coresignal's Clean Employee API into MongoDB, "
            "and read the mirrored profiles. Every error body is {error: {code, message, details}}.",
        },
        "security": [{"bearerAuth": []}],
        "paths": {**_paths(), **dashboard_paths(), **sync_paths()},
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                **request_schemas(max_items),
                **_response_schemas(),
                **dashboard_schemas(),
                **sync_schemas(),
            },
        },
    }
