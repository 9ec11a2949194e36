"""`CoresignalClient.warm_up`: connections opened before any slot is granted, for nothing.

A request that must open its connection reaches the API late by the handshake, which no rate
margin is meant to absorb. The warm-up opens the pool first with requests that carry no API key:
the API answers 401, counts them against no key and charges nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from tests.conftest import TEST_API_KEY, MakeSimulator
from tests.upstream_stub import raw_upstream
from worker.client import CoresignalClient

PROFILE = json.dumps({"id": 42, "full_name": "Ada"}).encode()


@dataclass
class CountingUpstream:
    """Counts the connections it accepts and the API keys of the requests on them."""

    connections: int = 0
    keys: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while head := await reader.readuntil(b"\r\n\r\n"):  # GETs: headers only
            lines = head.decode().split("\r\n")
            key = next((v for k, _, v in (h.partition(": ") for h in lines) if k.lower() == "apikey"), "")
            self.keys.append(key)
            status, body = ("200 OK", PROFILE) if key else ("401 Unauthorized", b"{}")
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()


@asynccontextmanager
async def counting_upstream() -> AsyncIterator[tuple[CountingUpstream, str]]:
    upstream = CountingUpstream()
    async with raw_upstream(upstream.serve) as base_url:
        yield upstream, base_url


async def test_the_requests_after_a_warm_up_ride_the_connections_it_opened() -> None:
    async with counting_upstream() as (upstream, base_url):
        client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5, limit=4)
        try:
            assert await client.warm_up(4) == 4
            assert (upstream.connections, upstream.keys) == (4, [""] * 4)  # no key sent
            profiles = await asyncio.gather(*(client.collect("42") for _ in range(4)))
        finally:
            await client.close()
    assert [p.employee_id for p in profiles] == [42] * 4
    assert upstream.keys[4:] == [TEST_API_KEY] * 4
    assert upstream.connections == 4  # none opened inside a request's slot


async def test_a_warm_up_costs_no_credits_and_no_rate_budget(make_simulator: MakeSimulator) -> None:
    simulator = await make_simulator(collect_rps=5)
    client = CoresignalClient.open(simulator.base_url, TEST_API_KEY, timeout_s=5, limit=8)
    try:
        assert await client.warm_up(8) == 8
    finally:
        await client.close()
    stats = simulator.state.stats()
    assert stats["status_counts"] == {"401": 8}
    assert stats["credits_charged"] == 0
    assert stats["classes"]["collect"]["accepted"] == stats["classes"]["collect"]["rejected_429"] == 0


async def test_an_unreachable_api_makes_the_warm_up_open_nothing_and_raise_nothing() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # the port is free again: connections are refused
    client = CoresignalClient.open(f"http://127.0.0.1:{port}/cdapi", TEST_API_KEY, timeout_s=5)
    try:
        assert await client.warm_up(3, timeout_s=1.0) == 0
    finally:
        await client.close()
