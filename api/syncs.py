"""`/v1/syncs`: saved syncs over HTTP (the same functions as `employee-sync syncs ...`), with their
OpenAPI paths and schemas (merged into the document by `api.openapi.build_openapi`).

POST   /v1/syncs                    201 the sync; 400 wrong shape; 409 name in use; 422 refused definition
GET    /v1/syncs                    200 {"syncs": [...]}
GET    /v1/syncs/{name}             200 the sync with its `freshness`; 404 sync_not_found
DELETE /v1/syncs/{name}             200 {"deleted": name} (mirrored profiles stay)
POST   /v1/syncs/{name}/pause       200 the sync    /resume    /run-now
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from api.errors import ApiError, json_response
from api.jsonbody import read_json
from api.request_schema import Schema, object_schema
from api.state import SERVICES, SETTINGS
from jobs.scheduler import budgets_of
from jobs.syncs import (
    SyncNotFoundError,
    SyncRequest,
    create_sync,
    delete_sync,
    get_sync,
    list_syncs,
    run_now,
    set_sync_state,
    sync_view,
)
from worker.errors import InputError
from worker.freshness import freshness_of
from worker.runtime import Services
from worker.store.syncs import SyncExistsError
from worker.sync_model import MAX_CREDITS_PER_DAY, MAX_DURATION_S, Sync, SyncSource, SyncState

_NAME_PATTERN = "^[a-z0-9][a-z0-9_.-]{0,63}$"
_FIELDS = {
    "name",
    "employee_ids",
    "shorthand_names",
    "query",
    "max_age",
    "every",
    "credits_per_day",
    "webhooks",
    "sweep_check",
}
_SOURCES = {"employee_ids": SyncSource.IDS, "shorthand_names": SyncSource.NAMES, "query": SyncSource.QUERY}


def add_sync_routes(app: web.Application) -> None:
    app.router.add_post("/v1/syncs", create)
    app.router.add_get("/v1/syncs", listing)
    app.router.add_get("/v1/syncs/{name}", show)
    app.router.add_delete("/v1/syncs/{name}", delete)
    for action in ("pause", "resume", "run-now"):
        app.router.add_post(f"/v1/syncs/{{name}}/{action}", _action(action))


def _bad(message: str) -> ApiError:
    return ApiError(400, "invalid_body", message)


def _duration(body: dict[str, Any], key: str) -> str | float | None:
    value = body.get(key)
    if (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int | float) and not isinstance(value, bool))
    ):
        return value
    raise _bad(f"{key}: expected a duration string like '7d' or a number of seconds")


def _item_ok(value: object) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int | str) or (isinstance(value, float) and value.is_integer())


def parse_sync_body(body: object) -> SyncRequest:
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad(f"unknown field(s): {', '.join(unknown)}")
    if not isinstance(body.get("name"), str):
        raise _bad("name: a string is required")
    given = [key for key in _SOURCES if key in body]
    if len(given) != 1:
        raise _bad(f"send exactly one of employee_ids, shorthand_names or query (got {len(given)})")
    source = _SOURCES[given[0]]
    nulls = sorted(k for k, v in body.items() if v is None)
    if nulls:
        raise _bad(f"{', '.join(nulls)}: null is not allowed (leave the field out for its default)")
    credits = body.get("credits_per_day")
    if isinstance(credits, float) and credits.is_integer():
        credits = int(credits)  # as in JSON Schema, 50.0 is the integer 50
    if credits is not None and (isinstance(credits, bool) or not isinstance(credits, int)):
        raise _bad("credits_per_day: an integer is expected")
    for flag in ("webhooks", "sweep_check"):
        if not isinstance(body.get(flag, False), bool):
            raise _bad(f"{flag}: a boolean is expected")
    lines = None
    if source is not SyncSource.QUERY:
        values = body[given[0]]
        if not isinstance(values, list) or not all(
            isinstance(v, int | str) and not isinstance(v, bool) for v in values
        ):
            raise _bad(
                f"{given[0]}: a list of {'integers or strings' if source is SyncSource.IDS else 'strings'}"
            )
        # As in JSON Schema, 954.0 is the integer 954.
        lines = [(index, str(int(v) if isinstance(v, float) else v)) for index, v in enumerate(values)]
    return SyncRequest(
        name=body["name"],
        source=source,
        lines=lines,
        query_body=body.get("query"),
        max_age=_duration(body, "max_age"),
        every=_duration(body, "every"),
        credits_per_day=credits,
        webhooks=bool(body.get("webhooks", False)),
        sweep_check=bool(body.get("sweep_check", True)),
    )


async def create(request: web.Request) -> web.Response:
    parsed = parse_sync_body(await read_json(request, request.app[SETTINGS].api_max_body_bytes))
    try:
        sync = await create_sync(request.app[SERVICES], parsed)
    except SyncExistsError as exc:
        raise ApiError(409, "sync_exists", str(exc)) from exc
    except InputError as exc:
        raise ApiError(422, "invalid_definition", str(exc)) from exc
    view = await sync_view(request.app[SERVICES], sync)
    return json_response(view, 201, headers={"Location": f"/v1/syncs/{sync.name}"})


async def listing(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response({"syncs": [await sync_view(services, s) for s in await list_syncs(services)]})


async def _found(services: Services, name: str) -> Sync:
    try:
        return await get_sync(services, name)
    except SyncNotFoundError as exc:
        raise ApiError(404, "sync_not_found", str(exc)) from exc


async def show(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    sync = await _found(services, request.match_info["name"])
    fresh = await freshness_of(services.store, budgets_of(services), sync)
    return json_response({**await sync_view(services, sync), "freshness": fresh.as_dict()})


async def delete(request: web.Request) -> web.Response:
    services, name = request.app[SERVICES], request.match_info["name"]
    await _found(services, name)
    try:
        await delete_sync(services, name)
    except SyncNotFoundError as exc:
        raise ApiError(404, "sync_not_found", str(exc)) from exc
    return json_response({"deleted": name})


def _action(action: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        services, name = request.app[SERVICES], request.match_info["name"]
        await _found(services, name)
        if action == "run-now":
            sync = await run_now(services, name)
        else:
            sync = await set_sync_state(
                services, name, SyncState.PAUSED if action == "pause" else SyncState.ACTIVE
            )
        return json_response(await sync_view(services, sync))

    handler.__name__ = f"sync_{action.replace('-', '_')}"
    return handler


# --- OpenAPI -------------------------------------------------------------------------------------


def sync_schemas() -> dict[str, Schema]:
    duration = {
        "oneOf": [
            {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?[smhdSMHD]$"},
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DURATION_S},
        ],
        "description": "'90s', '15m', '6h', '7d', or seconds",
    }
    count = {"type": "integer", "minimum": 0}
    nullable_text = {"type": ["string", "null"]}
    create_body = object_schema(
        {
            "name": {"type": "string", "pattern": _NAME_PATTERN},
            "employee_ids": {"type": "array", "minItems": 1, "items": {"type": ["integer", "string"]}},
            "shorthand_names": {"type": "array", "minItems": 1, "items": {"type": "string"}},
            "query": {
                "type": "object",
                "required": ["query"],
                "properties": {"query": {"type": "object", "minProperties": 1}},
                "description": "an ES-DSL body with a non-empty query",
            },
            "max_age": duration,
            "every": duration,
            "credits_per_day": {"type": "integer", "minimum": 1, "maximum": MAX_CREDITS_PER_DAY},
            "webhooks": {"type": "boolean"},
            "sweep_check": {
                "type": "boolean",
                "description": "confirm unchanged members by search (default)",
            },
        },
        required=["name"],
    )
    create_body["oneOf"] = [{"required": [k]} for k in _SOURCES]
    sync = object_schema(
        {
            "name": {"type": "string"},
            "source": {"type": "string", "enum": [s.value for s in SyncSource]},
            "state": {"type": "string", "enum": [s.value for s in SyncState]},
            "max_age": {"type": "string"},
            "max_age_s": {"type": "number"},
            "every": {"type": "string"},
            "every_s": {"type": "number"},
            "credits_per_day": {"type": ["integer", "null"]},
            "webhooks": {"type": "boolean"},
            "members": count,
            "created_at": {"type": "string", "format": "date-time"},
            "next_due_at": {"type": "string", "format": "date-time"},
            "last_tick_at": nullable_text,
            "current_run_id": nullable_text,
            "watermark": nullable_text,
            "sweep_paused_reason": nullable_text,
            "last_plan": {"type": "object"},
            "webhook_state": {"type": "string", "enum": ["off", "pending", "active", "degraded", "failed"]},
            "webhook_error": nullable_text,
            "webhook_subscriptions": {
                "type": "array",
                "items": object_schema(
                    {
                        "id": {"type": "string"},
                        "status": nullable_text,
                        "selection": {"type": "string", "enum": ["ids", "es_dsl", "all"]},
                        "ids_count": {"type": ["integer", "null"]},
                        "expiring_at": nullable_text,
                        "last_delivery_at": nullable_text,
                    },
                    required=["id", "status", "selection"],
                    closed=False,
                ),
                "description": "the --webhooks sync's subscriptions (renewed, deleted with the sync)",
            },
            "freshness": {"$ref": "#/components/schemas/SyncFreshness"},
        },
        required=["name", "source", "state", "max_age_s", "every_s", "members", "next_due_at"],
        closed=False,
    )
    freshness = object_schema(
        {
            "members": count,
            "mirrored": count,
            "over_max_age": count,
            "over_max_age_ratio": {"type": "number"},
            "oldest_age_s": {"type": ["number", "null"]},
            "staleness_histogram": {"type": "array", "items": {"type": "object"}},
            "credits_today": count,
            "credits_per_day": {"type": ["integer", "null"]},
            "changes_per_100_recollects": {"type": ["number", "null"]},
            "sweep_paused_reason": nullable_text,
        },
        closed=False,
    )
    page = object_schema(
        {"syncs": {"type": "array", "items": {"$ref": "#/components/schemas/Sync"}}}, required=["syncs"]
    )
    return {"CreateSyncRequest": create_body, "Sync": sync, "SyncFreshness": freshness, "SyncPage": page}


def _op(summary: str, ok: str, schema: str, errors: dict[str, str], op_id: str, **extra: Any) -> Schema:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    responses: dict[str, Any] = {
        ok: {
            "description": summary,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "401": {"description": "unauthorized", **error},
        "500": {"description": "internal: a bug", **error},
        "503": {"description": "unavailable: Redis or MongoDB is not answering", **error},
    }
    responses.update({status: {"description": why, **error} for status, why in errors.items()})
    return {"summary": summary, "operationId": op_id, "responses": responses, **extra}


def sync_paths() -> dict[str, Schema]:
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    missing = {"404": "sync_not_found"}
    deleted = object_schema({"deleted": {"type": "string"}}, required=["deleted"])
    paths: dict[str, Schema] = {
        "/v1/syncs": {
            "post": _op(
                "Save a sync (ids, names or a query) that keeps those profiles within max-age",
                "201",
                "Sync",
                {
                    "400": "invalid_json or invalid_body",
                    "409": "sync_exists",
                    "422": "invalid_definition (nothing saved)",
                },
                "createSync",
                requestBody={
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/CreateSyncRequest"}}
                    },
                },
            ),
            "get": _op("Every sync", "200", "SyncPage", {}, "listSyncs"),
        },
        "/v1/syncs/{name}": {
            "get": _op("A sync with its freshness", "200", "Sync", missing, "getSync", parameters=[name]),
            "delete": _op(
                "Forget a sync (mirrored profiles stay)",
                "200",
                "Sync",
                missing,
                "deleteSync",
                parameters=[name],
            ),
        },
    }
    paths["/v1/syncs/{name}"]["delete"]["responses"]["200"]["content"]["application/json"]["schema"] = deleted
    for action, what in (
        ("pause", "Stop planning a sync"),
        ("resume", "Plan a sync again"),
        ("run-now", "Make a sync due now"),
    ):
        op_id = "runSyncNow" if action == "run-now" else f"{action}Sync"
        paths[f"/v1/syncs/{{name}}/{action}"] = {
            "post": _op(what, "200", "Sync", missing, op_id, parameters=[name])
        }
    return paths
