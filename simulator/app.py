"""The simulator's aiohttp application, and helpers to run it.

A client's base URL is `http://HOST:PORT/cdapi`. API routes live under `/cdapi`:

POST /cdapi/v2/employee_clean/search/es_dsl   `simulator.search` (spec §3)
GET  /cdapi/v2/employee_clean/collect/{key}   `simulator.collect` (spec §4)
POST/GET /cdapi/v2/data_requests/...          `simulator.bulk` (spec §8, bulk collect)
/cdapi/v2/subscriptions/...                   `simulator.subscription_api` (spec §9)

The control endpoints under `/_sim` are documented in `simulator.admin` and, for the changing
world (`/_sim/advance`, `/_sim/mutate`, `/_sim/deliver`, `/_sim/world`), `simulator.world_admin`.
Other endpoint classes plug in with their own `add_routes(app)` and reuse `simulator.admission.admit`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from simulator import admin, bulk, collect, search, subscription_api, world_admin
from simulator.admission import ADMISSION, ARRIVAL, NOT_FOUND, new_correlation_id
from simulator.config import SimulatorConfig
from simulator.responses import json_error
from simulator.state import STATE, SimulatorState

API_PREFIX = "/cdapi"
ADMIN_PREFIX = "/_sim/"
# Abandoned slow responses notice their client left; nothing else should take longer.
SHUTDOWN_TIMEOUT_S = 2.0

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(config: SimulatorConfig) -> web.Application:
    """A fresh simulator. `config` stays live: changing it later changes behaviour."""
    app = web.Application(middlewares=[_api_middleware])
    app[STATE] = SimulatorState.from_config(config)
    collect.add_routes(app)
    search.add_routes(app)
    admin.add_routes(app)
    bulk.add_routes(app)
    subscription_api.add_routes(app)
    world_admin.add_routes(app)
    return app


@web.middleware
async def _api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[STATE]
    # Arrival time first of all: the rate limiter judges when a request came in, not when the
    # event loop got round to it.
    request[ARRIVAL] = state.clock()
    counted = not request.path.startswith(ADMIN_PREFIX)
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = json_error(404, NOT_FOUND)
    except web.HTTPException as exc:
        if counted:
            state.record_status(str(exc.status))
        raise
    if counted:
        _add_api_headers(state, request, response)
        admission = request.get(ADMISSION)
        dropped = admission is not None and admission.dropped
        state.record_status("reset" if dropped else str(response.status))
    return response


def _add_api_headers(state: SimulatorState, request: web.Request, response: web.StreamResponse) -> None:
    response.headers["x-correlation-id"] = new_correlation_id()
    admission = request.get(ADMISSION)
    if admission is None:  # not authenticated (or not an API route): nothing to disclose
        return
    response.headers["x-credits-remaining"] = str(state.credits_header())
    response.headers["x-ratelimit-limit-second"] = str(admission.decision.limit)
    response.headers["x-ratelimit-remaining-second"] = str(admission.decision.remaining)


@dataclass
class RunningSimulator:
    """A simulator listening on a real socket, for the CLI, benchmarks and end-to-end tests."""

    runner: web.AppRunner
    host: str
    port: int

    @property
    def state(self) -> SimulatorState:
        return self.runner.app[STATE]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{API_PREFIX}"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0) -> RunningSimulator:
    """Start listening (port 0 picks a free port) and return at once."""
    runner = web.AppRunner(create_app(config), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound_port = port
    if runner.addresses:
        bound_port = int(runner.addresses[0][1])
    return RunningSimulator(runner, host, bound_port)


async def serve(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Run until cancelled."""
    simulator = await start(config, host, port)
    log.info(
        "simulator listening on %s (population %d, seed %d)",
        simulator.base_url,
        config.population,
        config.seed,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.close()
