"""Control endpoints of the simulator. Not part of the real API: no auth, no rate limit, no credits.

GET   /_sim/health                   200 {"status": "ok"}
GET   /_sim/stats                    200 {
        "classes": {"collect": {"accepted", "rejected_429", "max_in_any_second", "limit_rps",
                                "accepted_rps", "first_accepted_s", "last_accepted_s"},
                    "search": {...}, "bulk": {...}},   # summed over keys; max_in_any_second is
                                                       # the largest per-key value
        "keys": {"<sha256(key)[:12]>": {"collect": {"accepted", "rejected_429",
                                                    "max_in_any_second", ...}, ...}},
        # accepted_rps: (accepted - 1) / (last - first accepted arrival), the achieved rate
        # over the span of accepted requests; *_accepted_s are on the simulator's clock
        "status_counts": {"200": n, "404": n, "reset": n, ...},  # /cdapi requests only
        "requests_total": n, "credits_remaining": n | null, "credits_charged": n,
        "bulk": {"posts_by_fingerprint": {"id_file:<hash>": n, ...},   # every POST that got
                                                       # past input checks (201, 409, 404, 402)
                 "created_by_fingerprint": {...},      # data requests created (201)
                 "downloads_by_file": {"<request_id>/<file name>": n}, # file GETs started
                 "completed_by_file": {...},           # ... whose whole body was sent
                 "requests": {"<request_id>": {"kind", "fingerprint", "records", "files",
                                               "error"}}},
        "webhooks": {"rounds", "posts", "notices", "retries", "failed_posts", "simulated",
                     "answers": {"202": n, "500": n, "timeout": n, "error": n, ...}},
        "world": {"changes": n, "pending": n}}     # see simulator.world_admin for /_sim/world
POST  /_sim/reset                    200 {"status": "reset"}: clears stats, rate windows,
                                     profile changes, cached search results, the world (clock
                                     offset, change history), subscriptions and bulk data
                                     requests; credits back to config.credits; fault draws
                                     start again from the seed
GET   /_sim/config                   200 the config, without api_keys
PATCH /_sim/config                   JSON subset of SimulatorConfig, e.g. {"credits": 5}
                                     200 new config without api_keys; 400 {"detail": [errors]}
                                     on unknown fields or wrong types. A patched `credits` sets
                                     the balance; patching seed, population, url_field_naming or
                                     last_updated_format rebuilds the population (and drops
                                     profile changes).
GET   /_sim/profiles/{id}            200 the current document (as collect would return it), 404
POST  /_sim/profiles/{id}/mutate     200 {"id", "version"}: a new current job, newer last_updated
POST  /_sim/profiles/{id}/remove     200 {"id", "removed": true}: collect now answers 404
POST  /_sim/profiles/{id}/restore    200 {"id", "removed": false}
                                     (404 for ids outside the population, 400 for non-integers)
                                     Every change is seen by the next search (new generation).
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
from aiohttp import web

from simulator.admission import NOT_FOUND
from simulator.bulk_store import BULK
from simulator.config import SimulatorConfig
from simulator.responses import json_error, json_response
from simulator.state import STATE, SimulatorState


async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    payload = request.app[STATE].stats()
    if BULK in request.app:
        payload["bulk"] = request.app[BULK].stats()
    return json_response(payload)


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].reset()
    if BULK in request.app:
        request.app[BULK].reset()
    return json_response({"status": "reset"})


async def get_config(request: web.Request) -> web.Response:
    return json_response(_public_config(request.app[STATE]))


async def patch_config(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        patch = json.loads(await request.text())
    except ValueError:
        return json_error(400, "Body must be a JSON object")
    if not isinstance(patch, dict):
        return json_error(400, "Body must be a JSON object")
    merged = {**state.config.model_dump(), **patch}
    try:
        # Strict: "5" is not a number and true is not 1; a test asking for that has a typo.
        new = SimulatorConfig.model_validate(merged, strict=True)
    except pydantic.ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        return json_error(400, errors)
    state.apply_config(new, set(patch))
    return json_response(_public_config(state))


async def get_profile(request: web.Request) -> web.Response:
    state = request.app[STATE]
    employee_id = _employee_id(request)
    document = None if employee_id is None else state.population.profile(employee_id)
    if document is None:
        return json_error(404, NOT_FOUND)
    return json_response(document)


async def change_profile(request: web.Request) -> web.Response:
    state = request.app[STATE]
    employee_id = _employee_id(request)
    if employee_id is None:
        return json_error(400, "Profile id must be an integer")
    action = request.match_info["action"]
    result: dict[str, Any] | None = None
    if action == "mutate":
        version = state.population.mutate(employee_id)
        result = None if version is None else {"id": employee_id, "version": version}
    elif action == "remove" and state.population.remove(employee_id):
        result = {"id": employee_id, "removed": True}
    elif action == "restore" and state.population.restore(employee_id):
        result = {"id": employee_id, "removed": False}
    return json_error(404, NOT_FOUND) if result is None else json_response(result)


def _employee_id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if raw.isascii() and raw.isdigit() else None


def _public_config(state: SimulatorState) -> dict[str, Any]:
    return state.config.model_dump(exclude={"api_keys"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/health", health, allow_head=False)
    app.router.add_get("/_sim/stats", stats, allow_head=False)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/config", get_config, allow_head=False)
    app.router.add_patch("/_sim/config", patch_config)
    app.router.add_get("/_sim/profiles/{id}", get_profile, allow_head=False)
    app.router.add_post("/_sim/profiles/{id}/{action:mutate|remove|restore}", change_profile)
