"""The simulator on a real socket, talked to the way the worker's client talks to the real API."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from urllib.parse import quote

import aiohttp
import pytest
from sim_support import API_KEY
from yarl import URL

from simulator import SimulatorConfig, serve, start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_start_picks_a_free_port_and_serves_collect() -> None:
    simulator = await start(SimulatorConfig(population=50), "127.0.0.1", 0)
    try:
        assert simulator.port > 0
        assert simulator.base_url == f"http://127.0.0.1:{simulator.port}/cdapi"
        profile = simulator.state.population.profile(10_014)
        assert profile is not None
        names = profile["shorthand_names"]
        key = quote(f"https://www.linkedin.com/in/{names[1]}/", safe="")
        url = URL(f"{simulator.base_url}/v2/employee_clean/collect/{key}", encoded=True)
        async with (
            aiohttp.ClientSession(headers={"apikey": API_KEY}) as session,
            session.get(url) as response,
        ):
            assert response.status == 200
            assert (await response.json())["id"] == 10_014
    finally:
        await simulator.close()


async def test_serve_runs_until_cancelled() -> None:
    port = free_port()
    task = asyncio.create_task(serve(SimulatorConfig(population=10), "127.0.0.1", port))
    health = f"http://127.0.0.1:{port}/_sim/health"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with session.get(health) as response:
                    assert response.status == 200
                    break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("simulator never answered")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(health):
                pass
