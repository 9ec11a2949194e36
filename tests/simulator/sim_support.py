"""Test helpers for the simulator: a simulator app behind a real aiohttp test server, and a
client that sends collect keys the way real clients do (percent-encoded)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy
from yarl import URL

from simulator.config import DEFAULT_API_KEY
from simulator.state import STATE, SimulatorState

API_KEY = DEFAULT_API_KEY
COLLECT_PATH = "/cdapi/v2/employee_clean/collect/"
# Small enough to generate in a blink, large enough for every word list to show up.
TEST_POPULATION = 500


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Sim:
    client: TestClient[aiohttp.web.Request, aiohttp.web.Application]

    @property
    def state(self) -> SimulatorState:
        return self.client.app[STATE]

    def url(self, path: str) -> URL:
        return URL(str(self.client.make_url("/")).rstrip("/") + path, encoded=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        timeout: float | None = None,
    ) -> Reply:
        client_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
        async with self.client.session.request(
            method, self.url(path), headers=headers, json=json_body, timeout=client_timeout
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def collect(
        self, key: str | int, *, api_key: str | None = API_KEY, timeout: float | None = None
    ) -> Reply:
        """GET collect/{key}, the key percent-encoded the way real clients do it."""
        headers = {} if api_key is None else {"apikey": api_key}
        path = COLLECT_PATH + quote(str(key), safe="")
        return await self.request("GET", path, headers=headers, timeout=timeout)

    async def admin(self, method: str, path: str, body: Any = None) -> Reply:
        return await self.request(method, "/_sim" + path, json_body=body)

    async def stats(self) -> dict[str, Any]:
        reply = await self.admin("GET", "/stats")
        assert reply.status == 200
        result: dict[str, Any] = reply.json()
        return result


MakeSim = Callable[..., Awaitable[Sim]]


def document(sim: Sim, employee_id: int) -> dict[str, Any]:
    """The simulator's own current document for an id that must exist."""
    found = sim.state.population.profile(employee_id)
    assert found is not None, employee_id
    return found
