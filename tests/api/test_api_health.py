"""Probes, outages and the last-resort 500: a MongoDB/Redis outage is a 503, never a 500."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
import structlog
from api_support import Api, MakeApi, assert_error

from config import Settings
from devstack import processes as svc
from jobs import producers
from worker.runtime import Services
from worker.store import MongoStore


@pytest.fixture
async def mongo_down(settings: Settings) -> AsyncIterator[Services]:
    """Services whose MongoDB client points at a closed port, with a short server-selection timeout."""
    opened = await Services.open(settings)
    await opened.store.close()
    closed = f"mongodb://127.0.0.1:{svc.free_port()}"
    broken = dataclasses.replace(
        opened, store=MongoStore.open(closed, settings.mongodb_database, timeout_s=0.3)
    )
    yield broken
    await broken.close()


@pytest.fixture
async def redis_down(settings: Settings) -> AsyncIterator[Services]:
    """Services whose Redis connections go to a closed port (the queue, progress... share the client)."""
    broken = await Services.open(settings)
    pool = broken.redis.connection_pool
    await pool.disconnect()
    pool.reset()  # forget the connections made to the real server; new ones use the new port
    pool.connection_kwargs.update(port=svc.free_port(), socket_connect_timeout=1)
    yield broken
    await broken.close()


async def test_healthz_answers_without_touching_the_services(api: Api) -> None:
    reply = await api.get("/healthz", token=None)

    assert (reply.status, reply.body) == (200, {"status": "ok"})


async def test_readyz_is_200_when_redis_and_mongodb_answer(api: Api) -> None:
    reply = await api.get("/readyz", token=None)

    assert (reply.status, reply.body) == (200, {"status": "ready"})


@pytest.mark.slow
async def test_readyz_is_503_naming_mongodb_when_it_is_unreachable(
    make_api: MakeApi, mongo_down: Services
) -> None:
    api = await make_api(services=mongo_down)

    error = assert_error(await api.get("/readyz", token=None), 503, "unavailable")

    assert error["message"] == "MongoDB is not answering; try again later"
    assert "127.0.0.1" not in error["message"]  # an open route: no connection details


async def test_readyz_is_503_naming_redis_when_it_is_unreachable(
    make_api: MakeApi, redis_down: Services
) -> None:
    api = await make_api(services=redis_down)

    error = assert_error(await api.get("/readyz", token=None), 503, "unavailable")

    assert error["message"] == "Redis is not answering; try again later"


async def test_healthz_stays_200_during_an_outage(make_api: MakeApi, mongo_down: Services) -> None:
    api = await make_api(services=mongo_down)

    assert (await api.get("/healthz", token=None)).status == 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/runs", {"employee_ids": [1, 2]}),
        ("POST", "/v1/runs", {"search": {"query": {"match_all": {}}}}),
        ("GET", "/v1/runs", None),
        ("GET", f"/v1/runs/{'0' * 32}", None),
        ("POST", f"/v1/runs/{'0' * 32}/cancel", None),
        ("GET", "/v1/employees/5", None),
    ],
)
@pytest.mark.slow
async def test_a_mongodb_outage_is_a_503_on_every_route_that_needs_it(
    make_api: MakeApi, mongo_down: Services, method: str, path: str, body: object
) -> None:
    api = await make_api(services=mongo_down)
    reply = await api.request(method, path, json_body=body) if body else await api.request(method, path)

    assert_error(reply, 503, "unavailable")
    assert reply.headers["Retry-After"] == "5"


async def test_a_redis_outage_is_a_503_too(make_api: MakeApi, redis_down: Services) -> None:
    api = await make_api(services=redis_down)

    assert_error(await api.post("/v1/runs", {"employee_ids": [1]}), 503, "unavailable")


async def test_an_unexpected_exception_is_a_logged_500_that_reveals_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(producers, "create_list_run", broken)

    with structlog.testing.capture_logs() as logs:
        error = assert_error(await api.post("/v1/runs", {"employee_ids": [1]}), 500, "internal")

    assert "secret internals" not in error["message"]
    [logged] = [e for e in logs if e["event"] == "api.internal_error"]
    assert (logged["path"], logged["exc_info"]) == ("/v1/runs", True)


@pytest.mark.slow
async def test_metrics_still_answer_during_a_mongodb_outage(make_api: MakeApi, mongo_down: Services) -> None:
    api = await make_api(services=mongo_down)

    reply = await api.get("/metrics")

    assert reply.status == 200
    assert 'employee_sync_scrape_backend_up{backend="mongodb"} 0.0' in reply.text
