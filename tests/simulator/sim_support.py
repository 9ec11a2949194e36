"""Test helpers for the simulator: a simulator app behind a real aiohttp test server, and a
client that sends collect keys and search cursors the way real clients do (percent-encoded)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy
from yarl import URL

from simulator.config import DEFAULT_API_KEY
from simulator.state import STATE, SimulatorState

API_KEY = DEFAULT_API_KEY
COLLECT_PATH = "/cdapi/v2/employee_clean/collect/"
SEARCH_PATH = "/cdapi/v2/employee_clean/search/es_dsl"
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
        data: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        """`json_body` is sent as JSON, `data` verbatim (for bodies that must not be valid JSON)."""
        client_timeout = aiohttp.ClientTimeout(total=timeout) if timeout else None
        async with self.client.session.request(
            method, self.url(path), headers=headers, json=json_body, data=data, timeout=client_timeout
        ) as response:
            return Reply(response.status, response.headers, await response.text())

    async def collect(
        self, key: str | int, *, api_key: str | None = API_KEY, timeout: float | None = None
    ) -> Reply:
        """GET collect/{key}, the key percent-encoded the way real clients do it."""
        headers = {} if api_key is None else {"apikey": api_key}
        path = COLLECT_PATH + quote(str(key), safe="")
        return await self.request("GET", path, headers=headers, timeout=timeout)

    async def search(
        self,
        body: Any,
        *,
        after: str | None = None,
        items_per_page: int | str | None = None,
        api_key: str | None = API_KEY,
        raw: bool = False,
    ) -> Reply:
        """POST es_dsl with `body` as JSON (or verbatim text if `raw`), parameters percent-encoded."""
        headers = {"Content-Type": "application/json"}
        if api_key is not None:
            headers["apikey"] = api_key
        params = {"after": after, "items_per_page": items_per_page}
        query = urlencode({name: value for name, value in params.items() if value is not None})
        path = SEARCH_PATH + (f"?{query}" if query else "")
        if raw:
            return await self.request("POST", path, headers=headers, data=body)
        return await self.request("POST", path, headers=headers, json_body=body)

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
