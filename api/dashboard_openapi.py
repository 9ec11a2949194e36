"""The OpenAPI description of the dashboard's routes (`api.dashboard_data`, `api.ui`).

Kept beside `api.openapi` (which merges it in) so the dashboard's documentation changes with it.
"""

from __future__ import annotations

from typing import Any

from api.dashboard_data import (
    LETTER_CURSOR_PATTERN,
    LETTERS_LIMIT_DEFAULT,
    LETTERS_LIMIT_MAX,
    MAX_QUERY_CHARS,
    REQUEUE_MAX,
)
from jobs.inputs import MAX_EMPLOYEE_ID

Schema = dict[str, Any]

_COUNT: Schema = {"type": "integer", "minimum": 0}
_NUM: Schema = {"type": "number"}
_TEXT: Schema = {"type": "string"}
_ERR = {"$ref": "#/components/schemas/Error"}
_EMPLOYEE_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}


def _n(type_name: str) -> Schema:
    return {"type": [type_name, "null"]}


def _obj(properties: dict[str, Schema], required: list[str] | None = None) -> Schema:
    return {"type": "object", "properties": properties, "required": required or list(properties)}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def dashboard_schemas() -> dict[str, Schema]:
    rate = _obj(
        {
            "endpoint_class": {"type": "string", "enum": ["collect", "search", "bulk"]},
            "limit_rps": _NUM,
            "series_start_s": {"type": "integer", "description": "epoch second of per_second[0]"},
            "per_second": {"type": "array", "items": _COUNT, "description": "slots granted fleet-wide"},
            "rps": {**_NUM, "description": "over the last 10 settled seconds"},
            "utilisation": {**_NUM, "description": "rps / limit_rps"},
            "wait_p50_s": _n("number"),
            "wait_p95_s": _n("number"),
            "r429_per_minute": {"type": "array", "items": _COUNT, "description": "last 30 min, oldest first"},
            "cooldown_remaining_s": _NUM,
        }
    )
    worker = _obj(
        {
            "worker_id": _TEXT, "host": _TEXT, "pid": {"type": "integer"}, "concurrency": _COUNT,
            "in_flight": _COUNT, "started_at_s": _NUM, "last_seen_s": _NUM, "age_s": _NUM,
        }
    )  # fmt: skip
    credits = _obj(
        {
            "remaining": _n("integer"), "at_s": _n("number"), "burn_per_h": _n("number"),
            "exhausted_at_s": _n("number"), "exhausted": {"type": "boolean"},
        }
    )  # fmt: skip
    queue = _obj({"depth": _COUNT, "oldest_age_s": _n("number"), "window": _COUNT})
    letter = _obj(
        {
            "id": _TEXT, "run_id": _TEXT, "item_key": _TEXT, "reason": _TEXT, "error_type": _TEXT,
            "status": _n("integer"), "attempts": _COUNT, "at": {"type": "string", "format": "date-time"},
        }
    )  # fmt: skip
    collect = _obj(
        {
            "at": {"type": "string", "format": "date-time"},
            "run_id": _TEXT,
            "outcome": {"type": "string", "enum": ["inserted", "changed", "unchanged", "not_found"]},
            "by": {"type": "string", "enum": ["id", "name"]},
        }
    )
    change = _obj({"at": _n("string"), "run_id": _n("string"), "fields": {"type": "array", "items": _TEXT}})
    return {
        "FleetClassRate": rate,
        "FleetWorker": worker,
        "Fleet": _obj(
            {
                "now_s": _NUM,
                "classes": {"type": "array", "items": _ref("FleetClassRate")},
                "credits": credits,
                "workers": {"type": "array", "items": _ref("FleetWorker"), "description": "live ones"},
                "queue": queue,
                "runs_by_state": {"type": "object", "additionalProperties": _COUNT},
                "rate_safety_margin": _NUM,
            }
        ),
        "DeadLetter": letter,
        "DeadLetterPage": _obj(
            {
                "total": _COUNT,
                "letters": {"type": "array", "items": _ref("DeadLetter")},
                "next_cursor": _n("string"),
                "reasons": {"type": "array", "items": _obj({"reason": _TEXT, "count": _COUNT})},
            }
        ),
        "Requeued": _obj({"requeued": _COUNT}),
        "Freshness": _obj(
            {
                "available": {"type": "boolean", "description": "false until a profile is mirrored"},
                "total": _COUNT,
                "max_age_s": _COUNT,
                "buckets": {"type": "array", "items": _obj({"le_s": _n("integer"), "count": _COUNT})},
                "over_max_age": _COUNT,
                "over_max_age_share": _NUM,
            }
        ),
        "SearchResult": _obj(
            {
                "q": _TEXT,
                "matches": {
                    "type": "array",
                    "items": _obj(
                        {"kind": {"type": "string", "enum": ["run", "employee"]}, "id": {}, "label": _TEXT}
                    ),
                },
            }
        ),
        "EmployeeHistory": _obj(
            {
                "id": {"type": "integer"},
                "mirrored": {"type": "boolean"},
                "name": _n("string"),
                "shorthand_names": {"type": "array", "items": _TEXT},
                "sync": {"type": "object"},
                "collects_total": _COUNT,
                "collects": {"type": "array", "items": collect, "description": "newest first, last 50"},
                "changes": {"type": "array", "items": change, "description": "newest first, last 50"},
            }
        ),
    }


def _json(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, ok: str, errors: str, **extra: Any) -> Schema:
    responses: Schema = {"200": {"description": "OK", **_json(_ref(ok))}}
    for status in ["401", *errors.split(), "503", "500"]:
        responses[status] = {"description": _ERROR_TEXT[status], **_json(_ERR)}
    return {"summary": summary, "operationId": op_id, "responses": responses, **extra}


_ERROR_TEXT = {
    "400": "invalid_parameter or invalid_body",
    "401": "unauthorized: missing or invalid bearer token",
    "403": "forbidden_origin: a browser sent it from another origin",
    "404": "employee_not_found",
    "500": "internal",
    "503": "unavailable: Redis or MongoDB is not answering",
}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _page(op_id: str, summary: str, content_type: str) -> Schema:
    """A public static file of the page: it holds no data, so it needs no token."""
    ok = {"description": "the file", "content": {content_type: {"schema": _TEXT}}}
    return {"get": {"summary": summary, "operationId": op_id, "security": [], "responses": {"200": ok}}}


def dashboard_paths() -> dict[str, Schema]:
    letters_params = [
        _query("reason", {"type": "string", "minLength": 1}, "exactly this reason"),
        _query("run_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": LETTERS_LIMIT_MAX, "default": LETTERS_LIMIT_DEFAULT},
        ),
        _query(
            "cursor", {"type": "string", "pattern": LETTER_CURSOR_PATTERN}, "next_cursor of the previous page"
        ),
    ]
    requeue_body: Schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string", "minLength": 1},
            "run_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        },
        "additionalProperties": False,
        "minProperties": 1,
    }
    return {
        "/ui": _page("ui", "The dashboard page (no data in it; it asks for a token)", "text/html"),
        "/ui/app.js": _page("uiScript", "The dashboard's script", "text/javascript"),
        "/ui/app.css": _page("uiStyles", "The dashboard's styles", "text/css"),
        "/v1/dashboard/fleet": {
            "get": _op(
                "dashboardFleet",
                "Fleet-wide live figures: granted rate vs limit per class, 429s, cool-downs, credits, "
                "queue, live workers, runs by state",
                "Fleet",
                "400",
            )
        },
        "/v1/dashboard/dead-letters": {
            "get": _op(
                "dashboardDeadLetters",
                "Dead letters, newest first, one page at a time, with the reasons and their counts",
                "DeadLetterPage",
                "400",
                parameters=letters_params,
            )
        },
        "/v1/dashboard/dead-letters/requeue": {
            "post": _op(
                "dashboardRequeue",
                f"Requeue the dead letters of a reason and/or run (at most {REQUEUE_MAX} per call)",
                "Requeued",
                "400 403",
                requestBody={"required": True, **_json(requeue_body)},
            )
        },
        "/v1/dashboard/freshness": {
            "get": _op("dashboardFreshness", "Mirror staleness histogram (cached 30 s)", "Freshness", "400")
        },
        "/v1/dashboard/search": {
            "get": _op(
                "dashboardSearch",
                "Find a run id, an employee id, a shorthand name or a profile URL",
                "SearchResult",
                "400",
                parameters=[
                    {
                        **_query("q", {"type": "string", "pattern": "\\S", "maxLength": MAX_QUERY_CHARS}),
                        "required": True,
                    }
                ],
            )
        },
        "/v1/employees/{id}/history": {
            "get": _op(
                "employeeHistory",
                "A profile's sync history: each collect (changed or not) and its change records",
                "EmployeeHistory",
                "400 404",
                parameters=[
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_EMPLOYEE_ID},
                    }
                ],
            )
        },
    }
