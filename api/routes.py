"""The route handlers. Each parses its input (api.validation), calls one run-control function, and
shapes the answer; failures are raised as `ApiError` and rendered by `api.errors.error_middleware`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiohttp import web

from api.cursor import from_control, to_control
from api.dashboard_params import runs_by_state
from api.errors import ApiError, error_response, json_response, unavailable_message
from api.items import rejected_if_none_usable
from api.jsonbody import read_json
from api.state import OPENAPI, SERVICES, SETTINGS
from api.validation import (
    ListRun,
    SearchRun,
    parse_employee_id,
    parse_list_query,
    parse_run_id,
    parse_run_request,
)
from jobs import control, producers, runs
from jobs.inputs import Rejected
from jobs.runs import RunStatus, get_status
from worker.errors import InputError, RunNotFoundError, RunStateError, TransientError
from worker.metrics_server import render_metrics
from worker.runtime import Services

log = structlog.get_logger("employee_sync.api")

SOURCE = "api"  # recorded with each run, as the CLI records the input file
MAX_VALUE_PREVIEW = 80
RunAction = Callable[[Services, str], Awaitable[RunStatus]]


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/runs", create_run)
    app.router.add_get("/v1/runs", list_runs)
    app.router.add_get("/v1/runs/{id}", get_run)
    app.router.add_post("/v1/runs/{id}/pause", _control(control.pause_run))
    app.router.add_post("/v1/runs/{id}/resume", _control(control.resume_run))
    app.router.add_post("/v1/runs/{id}/cancel", _control(control.cancel_run))
    app.router.add_get("/v1/employees/{id}", get_employee)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)


async def create_run(request: web.Request) -> web.Response:
    settings, services = request.app[SETTINGS], request.app[SERVICES]
    parsed = parse_run_request(await read_json(request, settings.api_max_body_bytes), settings.api_max_items)
    if isinstance(parsed, SearchRun):
        body = await _create_search_run(services, parsed)
    else:
        body = await _create_list_run(services, parsed)
    return json_response(body, 202, headers={"Location": f"/v1/runs/{body['run_id']}"})


async def _create_search_run(services: Services, parsed: SearchRun) -> dict[str, Any]:
    try:
        run_id = await producers.create_search_run(
            services, parsed.body, max_profiles=parsed.max_profiles, source=SOURCE, via=parsed.via
        )
    except InputError as exc:
        raise ApiError(422, "invalid_query", str(exc)) from exc
    # A search finds its ids page by page: `accepted` grows as the run goes (GET /v1/runs/{id}).
    return {"run_id": run_id, "kind": "search", "accepted": 0, "duplicates": 0, "rejected": []}


async def _create_list_run(services: Services, parsed: ListRun) -> dict[str, Any]:
    refused = rejected_if_none_usable(parsed.kind, parsed.values)
    if refused is not None:  # checked before the producer: an empty run would be created otherwise
        raise _nothing_usable(parsed, refused)
    receipt = await producers.create_list_run(
        services, parsed.kind, parsed.values, source=SOURCE, via=parsed.via
    )
    return {
        "run_id": receipt.run_id,
        "kind": parsed.kind,
        "accepted": receipt.accepted,
        "duplicates": receipt.duplicates,
        "rejected": [_rejected(r, parsed.values) for r in receipt.rejected],
        "rejected_count": receipt.rejected_count,
    }


def _nothing_usable(parsed: ListRun, refused: Sequence[Rejected]) -> ApiError:
    what = "an employee id" if parsed.kind == "ids" else "a shorthand name or a profile URL"
    count = len(parsed.values)
    message = f"no run created: none of the {count} items of {parsed.field} is {what}"
    rejected = [_rejected(r, parsed.values) for r in refused]
    return ApiError(422, "no_valid_items", message, {"rejected": rejected, "rejected_count": len(rejected)})


def _rejected(rejected: Rejected, values: Sequence[object]) -> dict[str, Any]:
    value = rejected.value
    if not value and 0 <= rejected.line < len(values):
        # Non-string items (objects, arrays, null...) come back as the JSON the client sent.
        original = values[rejected.line]
        value = original if isinstance(original, str) else json.dumps(original, separators=(",", ":"))
        value = value if len(value) <= MAX_VALUE_PREVIEW else value[: MAX_VALUE_PREVIEW - 1] + "…"
    return {"index": rejected.line, "value": value, "reason": rejected.reason}


async def get_run(request: web.Request) -> web.Response:
    run_id = parse_run_id(request.match_info["id"])
    status = await get_status(request.app[SERVICES], run_id)
    if status is None:
        raise _run_not_found(run_id)
    return json_response(status.as_dict())


async def list_runs(request: web.Request) -> web.Response:
    query = parse_list_query(request.query)
    cursor = None if query.cursor is None else to_control(query.cursor)
    services = request.app[SERVICES]

    async def running_count() -> int:
        by_state = await runs_by_state(request.app, services)
        return by_state[runs.RunState.RUNNING]

    page = await runs.list_runs(
        services, state=query.state, limit=query.limit, cursor=cursor, running_count=running_count
    )
    return json_response(
        {"runs": [run.as_dict() for run in page.runs], "next_cursor": from_control(page.next_cursor)}
    )


def _control(action: RunAction) -> Callable[[web.Request], Awaitable[web.Response]]:
    """POST /v1/runs/{id}/<action>: 200 with the run after the change; 404; 409 if the state forbids it."""

    async def handler(request: web.Request) -> web.Response:
        run_id = parse_run_id(request.match_info["id"])
        try:
            status = await action(request.app[SERVICES], run_id)
        except RunNotFoundError as exc:
            raise _run_not_found(run_id) from exc
        except RunStateError as exc:
            raise ApiError(409, "invalid_state", str(exc)) from exc
        return json_response(status.as_dict())

    handler.__name__ = action.__name__
    return handler


def _run_not_found(run_id: str) -> ApiError:
    return ApiError(404, "run_not_found", f"no run {run_id}")


async def get_employee(request: web.Request) -> web.Response:
    employee_id = parse_employee_id(request.match_info["id"])
    doc = await request.app[SERVICES].store.employees.get(employee_id)
    if doc is None:
        raise ApiError(404, "employee_not_found", f"employee {employee_id} is not mirrored")
    return json_response({"id": doc["_id"], "profile": doc.get("profile"), "sync": doc.get("sync") or {}})


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never touches Redis or MongoDB (a restart would not fix them)."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Redis and MongoDB answer. Any failure is a 503, never a 500."""
    try:
        await request.app[SERVICES].ping()
    except TransientError as exc:
        log.warning("api.not_ready", error=str(exc))
        return error_response(503, "unavailable", unavailable_message(exc))
    except Exception:
        log.exception("api.not_ready")
        return error_response(503, "unavailable", "a backing service check failed; see the API's log")
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; a fleet-wide view (queue depth, run states) read at scrape time."""
    body, content_type = await render_metrics(request.app[SERVICES])
    return web.Response(body=body, headers={"Content-Type": content_type})


async def openapi(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
