"""Shared pieces of the webhook tests: the simulator's changing world, our API on a real socket,
and plain HTTP calls to both (nothing mocked)."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from api.app import create_app
from config import Settings
from devstack import processes as svc
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.cli_support import run_cli_in_process
from tests.conftest import with_overrides
from worker.runtime import Services

TOKEN = "api-token-webhooks-0123456789ab"
POPULATION = 200


def everyone() -> list[int]:
    return [Population.id_at(i) for i in range(POPULATION)]


def webhook_settings(settings: Settings, sim: RunningSimulator, port: int, **extra: object) -> Settings:
    return with_overrides(
        settings,
        coresignal_base_url=sim.base_url,
        collect_rps=300,
        worker_concurrency=20,
        api_tokens=TOKEN,
        webhook_public_base_url=f"http://127.0.0.1:{port}",
        webhook_fresh_window_s=0,
        changes_settle_s=0,
        **extra,
    )


@dataclass(frozen=True)
class Reply:
    status: int
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


async def http(
    method: str, url: str, body: Any = None, *, data: bytes | None = None, token: str | None = TOKEN
) -> Reply:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    payload = None if data is None else io.BytesIO(data)  # aiohttp warns on large raw bytes
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=payload, headers=headers) as r,
    ):
        return Reply(r.status, await r.text())


async def sim_admin(sim: RunningSimulator, method: str, path: str, body: Any = None) -> Any:
    reply = await http(method, f"http://{sim.host}:{sim.port}/_sim/{path}", body, token=None)
    assert reply.status == 200, reply.text
    return reply.json()


async def credits_charged(sim: RunningSimulator) -> int:
    return int((await sim_admin(sim, "GET", "stats"))["credits_charged"])


@asynccontextmanager
async def api_server(settings: Settings, services: Services, port: int) -> AsyncIterator[str]:
    """Our HTTP API (receiver included) on 127.0.0.1:`port`; yields its base URL."""
    server = TestServer(create_app(settings, services), host="127.0.0.1", port=port)
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await server.close()


def free_port() -> int:
    return svc.free_port()


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "CORESIGNAL_API_KEY": settings.coresignal_api_key.get_secret_value(),
        "CORESIGNAL_BASE_URL": settings.coresignal_base_url,
        "WEBHOOK_PUBLIC_BASE_URL": settings.webhook_public_base_url or "",
        "LOG_JSON": "true",
        "LOG_LEVEL": "WARNING",
    }


async def cli(settings: Settings, *args: str) -> Any:
    """`employee-sync ARGS --json` (in this process, tests/cli_support.py); returns its parsed output."""
    return json.loads(await cli_text(settings, *args))


async def cli_lines(settings: Settings, *args: str) -> list[Any]:
    """`employee-sync ARGS --json` printing JSON lines."""
    return [json.loads(line) for line in (await cli_text(settings, *args)).splitlines() if line.strip()]


async def cli_text(settings: Settings, *args: str) -> str:
    # In a thread: the command runs its own event loop, and this test's loop serves the upstream stub.
    result = await asyncio.to_thread(run_cli_in_process, settings, *args, "--json", **cli_env(settings))
    assert result.returncode == 0, result.stderr
    return result.stdout
