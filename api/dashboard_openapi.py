"""The OpenAPI description of the dashboard's routes (`api.dashboard_data`, `api.ui`).

Kept beside `api.openapi` (which merges it in) so the dashboard's documentation changes with it.
"""

from __future__ import annotations

from typing import Any

from api.dashboard_data import LIVE_RUNS_MAX, MAX_QUERY_CHARS, REQUEUE_MAX
from api.dashboard_params import LETTERS_LIMIT_DEFAULT, LETTERS_LIMIT_MAX, POSITION_CURSOR_PATTERN
from api.dashboard_upstream import PAGE_DEFAULT, PAGE_MAX, ROW_ID_PATTERN
from jobs.inputs import MAX_EMPLOYEE_ID
from jobs.runs import counter_fields
from worker.run_model import DATA_REQUEST_STATES

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
        **_upstream_schemas(),
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
        "LiveRuns": _obj(
            {
                "runs": {
                    "type": "array",
                    "items": _obj({"run_id": _TEXT, **dict.fromkeys(counter_fields({}), _COUNT)}),
                    "description": "the asked runs that have live counters in Redis, in the order asked",
                }
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
                        {
                            "kind": {"type": "string", "enum": ["run", "employee", "data_request"]},
                            "id": {},
                            "label": _TEXT,
                        }
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


_TIME: Schema = {"type": "string", "format": "date-time"}


def _upstream_schemas() -> dict[str, Schema]:
    """Data requests (the bulk ledger) and webhook subscriptions (`api.dashboard_upstream`)."""
    state: Schema = {"type": "string", "enum": list(DATA_REQUEST_STATES)}
    summary = {
        "id": {"type": "string", "pattern": ROW_ID_PATTERN, "description": "the ledger row: <run id>:<seq>"},
        "run_id": _TEXT, "seq": _COUNT, "kind": {"type": "string", "enum": ["id_file", "es_dsl"]},
        "state": state, "request_id": {**_n("string"), "description": "the upstream's id"},
        "error": _n("string"), "created_at": _TIME, "age_s": _NUM, "submitted_at": _n("string"),
        "ready_at": _n("string"),
        "files_expire_at": {**_n("string"), "description": "ready_at + 30 days, when files are listed"},
        "files_expired": {"type": "boolean"}, "polls": _COUNT, "files_total": _COUNT,
        "files_done": _COUNT, "records_ingested": _COUNT, "bytes_downloaded": _COUNT,
    }  # fmt: skip
    file = _obj(
        {
            "index": _COUNT, "name": _TEXT, "done": {"type": "boolean"}, "records_ingested": _COUNT,
            "downloads": _COUNT, "corrupt_downloads": _COUNT,
        }
    )  # fmt: skip
    subscription = _obj(
        {
            "id": _TEXT, "type": _n("string"), "selection": _n("string"),
            "status": {**_n("string"), "description": "as the upstream last said, or expired"},
            "created_at": _n("string"), "age_s": _n("number"), "expiring_at": _n("string"),
            "expires_in_s": _n("number"), "renewed_at": _n("string"), "last_delivery_at": _n("string"),
            "last_delivery_age_s": _n("number"),
            "silent": {"type": "boolean", "description": "no delivery for cadence + slack"},
        }
    )  # fmt: skip
    detail = {
        **summary,
        "fingerprint": _TEXT,
        "limit": _n("integer"),
        "download_errors": _COUNT,
        "run_state": _n("string"),
        "files": {"type": "array", "items": file},
    }
    return {
        "DataRequestSummary": _obj(summary),
        "DataRequestPage": _obj(
            {
                "total": _COUNT,
                "by_state": {"type": "object", "additionalProperties": _COUNT, "description": "cached 10 s"},
                "data_requests": {"type": "array", "items": _ref("DataRequestSummary")},
                "next_cursor": _n("string"),
            }
        ),
        "DataRequestDetail": _obj(detail),
        "SubscriptionSummary": subscription,
        "SubscriptionPage": _obj(
            {
                "total": _COUNT,
                "subscriptions": {"type": "array", "items": _ref("SubscriptionSummary")},
                "next_cursor": _n("string"),
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
    "404": "employee_not_found or data_request_not_found",
    "500": "internal",
    "503": "unavailable: Redis or MongoDB is not answering",
}


def _query(name: str, schema: Schema, description: str = "") -> Schema:
    return {"name": name, "in": "query", "schema": schema, "description": description}


def _page(op_id: str, summary: str, content_type: str) -> Schema:
    """A public static file of the page: it holds no data, so it needs no token."""
    ok = {"description": "the file", "content": {content_type: {"schema": _TEXT}}}
    return {"get": {"summary": summary, "operationId": op_id, "security": [], "responses": {"200": ok}}}


_CURSOR_PARAM = _query(
    "cursor", {"type": "string", "pattern": POSITION_CURSOR_PATTERN}, "next_cursor of the previous page"
)


def dashboard_paths() -> dict[str, Schema]:
    letters_params = [
        _query("reason", {"type": "string", "minLength": 1}, "exactly this reason"),
        _query("run_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}),
        _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": LETTERS_LIMIT_MAX, "default": LETTERS_LIMIT_DEFAULT},
        ),
        _CURSOR_PARAM,
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
        "/v1/dashboard/live-runs": {
            "get": _op(
                "dashboardLiveRuns",
                "The live counters of some runs (Redis only): what the page polls between two reads "
                "of /v1/runs",
                "LiveRuns",
                "400",
                parameters=[
                    {
                        **_query(
                            "run_ids",
                            {
                                "type": "string",
                                "pattern": f"^[0-9a-f]{{32}}(,[0-9a-f]{{32}}){{0,{LIVE_RUNS_MAX - 1}}}$",
                            },
                            f"1 to {LIVE_RUNS_MAX} run ids, comma-separated",
                        ),
                        "required": True,
                    }
                ],
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
        **_upstream_paths(),
        "/v1/dashboard/freshness": {
            "get": _op("dashboardFreshness", "Mirror staleness histogram (cached 30 s)", "Freshness", "400")
        },
        "/v1/dashboard/search": {
            "get": _op(
                "dashboardSearch",
                "Find a run id, an employee id, a shorthand name, a profile URL or a data request id",
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


def _upstream_paths() -> dict[str, Schema]:
    limit = _query("limit", {"type": "integer", "minimum": 1, "maximum": PAGE_MAX, "default": PAGE_DEFAULT})
    run_id = _query("run_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "only this bulk run's")
    row_id = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": ROW_ID_PATTERN},
    }
    return {
        "/v1/dashboard/data-requests": {
            "get": _op(
                "dashboardDataRequests",
                "Bulk data requests (the ledger), newest first, one page at a time, with counts by state",
                "DataRequestPage",
                "400",
                parameters=[run_id, limit, _CURSOR_PARAM],
            )
        },
        "/v1/dashboard/data-requests/{id}": {
            "get": _op(
                "dashboardDataRequest",
                "One data request: its state, its run, each of its files",
                "DataRequestDetail",
                "400 404",
                parameters=[row_id],
            )
        },
        "/v1/dashboard/subscriptions": {
            "get": _op(
                "dashboardSubscriptions",
                "Webhook subscriptions, newest first: state, selection, age, expiry, last delivery",
                "SubscriptionPage",
                "400",
                parameters=[limit, _CURSOR_PARAM],
            )
        },
    }
