"""`GET /cdapi/v2/employee_clean/collect/{key}` (spec §4)."""

from __future__ import annotations

from aiohttp import web

from simulator.admission import INSUFFICIENT_CREDITS, NOT_FOUND, admit
from simulator.responses import json_error, json_response
from simulator.state import STATE

# `.+` rather than aiohttp's default `[^/]+`: a full profile URL sent without percent-encoding
# its slashes still reaches the handler. Encoded `%2F` is decoded by aiohttp after matching.
COLLECT_ROUTE = "/cdapi/v2/employee_clean/collect/{key:.+}"


async def collect(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cost = state.config.collect_cost
    refusal = await admit(state, request, "collect", cost)
    if refusal is not None:
        return refusal
    employee_id = state.population.resolve(request.match_info["key"])
    document = None if employee_id is None else state.population.profile(employee_id)
    if document is None:
        return json_error(404, NOT_FOUND)
    if not state.charge(cost):
        return json_error(402, INSUFFICIENT_CREDITS)
    return json_response(document)


def add_routes(app: web.Application) -> None:
    app.router.add_get(COLLECT_ROUTE, collect, allow_head=False)
