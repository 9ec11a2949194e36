"""Fixtures for the simulator's tests; helpers live in `sim_support`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sim_support import TEST_POPULATION, MakeSim, Sim

from simulator.app import create_app
from simulator.config import SimulatorConfig


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    """`await make_sim(credits=3, ...)`: a running simulator with those config overrides."""
    clients: list[TestClient[aiohttp.web.Request, aiohttp.web.Application]] = []

    async def factory(**overrides: Any) -> Sim:
        config = SimulatorConfig(population=TEST_POPULATION, **overrides)
        client: TestClient[aiohttp.web.Request, aiohttp.web.Application] = TestClient(
            TestServer(create_app(config))
        )
        await client.start_server()
        clients.append(client)
        return Sim(client)

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def sim(make_sim: MakeSim) -> Sim:
    return await make_sim()
