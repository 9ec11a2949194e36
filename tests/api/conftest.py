"""Fixtures for the HTTP API tests: the app behind a real aiohttp test server, on real Redis and the
Mongo-wire server (the `settings`/`services` fixtures of tests/conftest.py); helpers in `api_support`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from api_support import ROTATED_TOKEN, TOKEN, Api, MakeApi

from api.app import create_app
from config import Settings
from tests.conftest import with_overrides
from worker.runtime import Services


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings plus two accepted bearer tokens (a rotation in progress)."""
    return with_overrides(settings, api_tokens=f"{TOKEN}, {ROTATED_TOKEN}")


@pytest.fixture
async def make_api(settings: Settings, services: Services) -> AsyncIterator[MakeApi]:
    """`await make_api(settings=..., services=..., insecure=...)`: an app on its own test server."""
    clients: list[TestClient[web.Request, web.Application]] = []

    async def factory(
        settings: Settings = settings, services: Services = services, *, insecure: bool = False
    ) -> Api:
        client: TestClient[web.Request, web.Application] = TestClient(
            TestServer(create_app(settings, services, insecure=insecure))
        )
        await client.start_server()
        clients.append(client)
        return Api(client)

    yield factory
    for client in clients:
        await client.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()
