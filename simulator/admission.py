"""What every billable API request goes through before its handler does real work.

`admit` applies, in the API's order: arrival jitter (the network's, if configured), authentication
(401), the per-key rate limit (429), the credit balance (402), then injected faults (reset, slow,
503, malformed). An endpoint handler calls it first, before any `await` of its own (so arrival
order is the order checked, jitter aside), and returns the response it gets back, if any:

    refusal = await admit(state, request, "search", state.config.search_cost)
    if refusal is not None:
        return refusal
    ...
    if not state.charge(cost):          # the only way to bill a 200
        return json_error(402, INSUFFICIENT_CREDITS)
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass

from aiohttp import web

from simulator.ratelimit import Decision
from simulator.responses import json_error, raw_json
from simulator.state import SimulatorState

INVALID_KEY = "Invalid authentication credentials"
TOO_MANY_REQUESTS = "Too many requests"
INSUFFICIENT_CREDITS = "Insufficient credits"
UNAVAILABLE = "Service temporarily unavailable"
TIMED_OUT = "Gateway timeout"
NOT_FOUND = "Not found"

# A cut-off profile: starts like a real one, so only a real JSON parse can tell.
MALFORMED_BODY = b'{"id": 10000, "full_name": "Trunc'
# How often a slow response checks whether its client already gave up.
_SLOW_POLL_S = 0.05


@dataclass(slots=True)
class Admission:
    """What the middleware needs to put the API's headers on the response."""

    endpoint_class: str
    decision: Decision
    dropped: bool = False  # the connection was reset on purpose: there is no response


ARRIVAL = web.RequestKey("simulator_arrival", float)
ADMISSION = web.RequestKey("simulator_admission", Admission)
CORRELATION_ID = web.RequestKey("simulator_correlation_id", str)


def arrival_time(state: SimulatorState, request: web.Request) -> float:
    return request[ARRIVAL] if ARRIVAL in request else state.clock()


async def admit(
    state: SimulatorState, request: web.Request, endpoint_class: str, cost: int
) -> web.Response | None:
    """None if the request may proceed; otherwise the response to return instead."""
    arrival = await _jittered_arrival(state, request)
    api_key = request.headers.get("apikey", "")
    if api_key not in state.config.api_keys:
        return json_error(401, INVALID_KEY)
    limit = state.config.rps_for(endpoint_class)
    decision = state.limiter.check(api_key, endpoint_class, limit, arrival)
    admission = Admission(endpoint_class, decision)
    request[ADMISSION] = admission
    if not decision.accepted:
        return json_error(429, TOO_MANY_REQUESTS, headers=_retry_after(state))
    await _injected_latency(state)
    if not state.can_afford(cost):
        return json_error(402, INSUFFICIENT_CREDITS)
    return await _injected_fault(state, request, admission)


async def _jittered_arrival(state: SimulatorState, request: web.Request) -> float:
    """When the rate window counts this request: on arrival, or U(0, J) ms later with jitter J."""
    jitter_ms = state.config.arrival_jitter_ms
    if jitter_ms <= 0:
        return arrival_time(state, request)
    await asyncio.sleep(state.rng.uniform(0.0, jitter_ms) / 1000)
    return state.clock()


def format_retry_after(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _retry_after(state: SimulatorState) -> dict[str, str] | None:
    seconds = state.config.retry_after_s
    return None if seconds is None else {"Retry-After": format_retry_after(seconds)}


async def _injected_latency(state: SimulatorState) -> None:
    low, high = sorted((state.config.latency_ms_min, state.config.latency_ms_max))
    if high > 0:
        await asyncio.sleep(state.rng.uniform(low, high) / 1000)


async def _injected_fault(
    state: SimulatorState, request: web.Request, admission: Admission
) -> web.Response | None:
    """At most one fault per request, each with its configured probability."""
    config = state.config
    draw = state.rng.random()
    threshold = 0.0
    for rate, fault in (
        (config.reset_rate, "reset"),
        (config.slow_rate, "slow"),
        (config.error_rate_5xx, "5xx"),
        (config.malformed_rate, "malformed"),
    ):
        threshold += rate
        if draw < threshold:
            return await _fault_response(state, request, admission, fault)
    return None


async def _fault_response(
    state: SimulatorState, request: web.Request, admission: Admission, fault: str
) -> web.Response:
    if fault == "reset":
        admission.dropped = True
        if request.transport is not None:
            request.transport.abort()
        # aiohttp writes this into a closed transport and quietly gives up.
        return web.Response(status=500)
    if fault == "slow":
        await _sleep_while_connected(request, state.config.slow_s)
        return json_error(504, TIMED_OUT)
    if fault == "5xx":
        return json_error(503, UNAVAILABLE)
    return raw_json(MALFORMED_BODY)


async def _sleep_while_connected(request: web.Request, seconds: float) -> None:
    # aiohttp does not cancel a handler whose client left; without this check abandoned slow
    # requests would hold up server shutdown for the full `slow_s`.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(_SLOW_POLL_S, remaining))


def new_correlation_id() -> str:
    return str(uuid.uuid4())
