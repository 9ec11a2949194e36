"""Review #21: one rate-limit slot carries one request. aiohttp resends an idempotent GET once when the
connection drops before the response; the client must not, or a slot carries two (maybe two credits).

The upstream here is a raw asyncio server on a real socket that counts the requests it receives and
drops chosen ones without answering: that is how a keep-alive connection closed by the far end looks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp
import pytest

from tests.conftest import TEST_API_KEY
from tests.upstream_stub import raw_upstream
from worker.client import COLLECT_PATH, CoresignalClient
from worker.errors import UpstreamUnavailableError

PROFILE = json.dumps({"id": 42, "full_name": "Ada"}).encode()


@dataclass
class DroppingUpstream:
    """Answers every request with a profile, except the request numbers in `drop` (1-based)."""

    drop: set[int]
    received: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):  # a GET: headers only
            self.received += 1
            if self.received in self.drop:
                break  # close without a response
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(PROFILE)}\r\n"
            writer.write(head.encode() + b"x-credits-remaining: 9\r\n\r\n" + PROFILE)
            await writer.drain()


@asynccontextmanager
async def dropping_upstream(drop: set[int]) -> AsyncIterator[tuple[DroppingUpstream, str]]:
    upstream = DroppingUpstream(drop)
    async with raw_upstream(upstream.serve) as base_url:
        yield upstream, base_url


async def test_control_plain_aiohttp_resends_a_get_whose_connection_dropped() -> None:
    """Without this the tests below could pass on a server that never provokes the resend."""
    async with dropping_upstream({2}) as (upstream, base_url), aiohttp.ClientSession() as session:
        for _ in range(2):  # the second GET reuses the keep-alive connection, which the far end drops
            async with session.get(f"{base_url}{COLLECT_PATH}42") as resp:
                assert resp.status == 200
    assert upstream.received == 3  # two calls, three requests: the dropped one went out twice


async def test_a_dropped_reused_connection_is_one_request_and_an_error() -> None:
    async with dropping_upstream({2}) as (upstream, base_url):
        client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5)
        try:
            assert (await client.collect("42")).employee_id == 42
            with pytest.raises(UpstreamUnavailableError, match="ServerDisconnectedError"):
                await client.collect("42")  # the job's retry policy decides, with a new slot
        finally:
            await client.close()
    assert upstream.received == 2  # two calls, two requests


async def test_a_dropped_fresh_connection_is_not_resent_either() -> None:
    async with dropping_upstream({1}) as (upstream, base_url):
        client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5)
        try:
            with pytest.raises(UpstreamUnavailableError, match=r"^GET /v2/employee_clean/collect/42: "):
                await client.collect("42")
        finally:
            await client.close()
    assert upstream.received == 1


async def test_a_refused_connection_keeps_its_own_message() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()  # nothing listens there now
    client = CoresignalClient.open(f"http://127.0.0.1:{port}/cdapi", TEST_API_KEY, timeout_s=5)
    try:
        with pytest.raises(UpstreamUnavailableError, match="ClientConnectorError"):
            await client.collect("42")
    finally:
        await client.close()
