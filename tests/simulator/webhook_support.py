"""Helpers for the webhook tests: a real receiver on a socket, and subscription calls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer
from sim_support import API_KEY, Reply, Sim

SUBS = "/cdapi/v2/subscriptions"
EXPERIENCE_IDS = f"{SUBS}/experience_changes/employee_clean/ids"
PROFILE_ALL = f"{SUBS}/employee_clean/all"
DEADLINE_S = 10.0


@dataclass
class Receiver:
    """Records every POSTed body; answers `status` (changeable mid-test)."""

    url: str = ""
    status: int = 202
    bodies: list[Any] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.changed.set()
        return web.Response(status=self.status)

    def items(self) -> list[dict[str, Any]]:
        return [item for body in self.bodies for item in body]

    def member_ids(self) -> list[int]:
        return [item["member_id"] for item in self.items()]

    async def wait_for_bodies(self, count: int) -> None:
        """Until `count` bodies arrived; fails after DEADLINE_S."""
        async with asyncio.timeout(DEADLINE_S):
            while len(self.bodies) < count:
                self.changed.clear()
                await self.changed.wait()


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    server = TestServer(app)
    await server.start_server()
    rec.url = str(server.make_url("/hook"))
    try:
        yield rec
    finally:
        await server.close()


async def api(sim: Sim, method: str, path: str, body: Any = None, *, api_key: str = API_KEY) -> Reply:
    return await sim.request(method, path, headers={"apikey": api_key}, json_body=body)


async def subscribe(sim: Sim, path: str, body: dict[str, Any]) -> str:
    reply = await api(sim, "POST", path, body)
    assert reply.status == 200, reply.text
    subscription_id: str = reply.json()["id"]
    return subscription_id


async def world_changes(sim: Sim) -> list[dict[str, Any]]:
    reply = await sim.admin("GET", "/world")
    assert reply.status == 200
    changes: list[dict[str, Any]] = reply.json()["changes"]
    return changes
