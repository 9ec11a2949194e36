"""Shared fixtures: real Redis and the Mongo-wire server (or real MongoDB via MONGODB_URL), flushed per test.

- `MONGODB_URL` set: the suite runs against that server (e.g. `docker compose up -d mongo`).
  Unset: a Mongo-wire server (mongoeco, in memory) is started for the session on a free port.
- `TEST_REDIS_URL` set: that Redis database, flushed per test. Unset: the session claims a free database
  (15 down to 1) on 127.0.0.1:6379 with a lease key in database 0, so two copies of the suite can run side
  by side on one Redis without flushing each other's keys.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from config import Settings
from devstack import processes as svc
from jobs.inputs import read_lines
from jobs.producers import Receipt, enqueue_lines
from simulator.app import RunningSimulator, start
from simulator.config import SimulatorConfig
from simulator.population import Population
from worker.runtime import Services, shutdown, startup

TEST_API_KEY = "test-key-0123456789abcdef01234567"


def pytest_addoption(parser: pytest.Parser) -> None:
    # tests/browser: also save the overview screenshot here (README: regenerating docs/dashboard.png).
    parser.addoption("--dashboard-screenshot", default=None, help="copy the dashboard screenshot to PATH")


def with_overrides(settings: Settings, **changes: object) -> Settings:
    """A validated copy (model_copy would skip validation, e.g. leave a str where a SecretStr goes)."""
    return Settings.model_validate({**settings.model_dump(), **changes})


_SUITE_LEASE_S = 3 * 3600  # longer than any suite run; a crashed suite's claim lapses by itself


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    explicit = os.environ.get("TEST_REDIS_URL")
    base = explicit or "redis://127.0.0.1:6379/0"
    with svc.redis_available(base):
        if explicit:
            yield explicit
            return
        lease = redis.Redis.from_url(base)
        token = uuid.uuid4().hex
        claimed = next(
            (
                db
                for db in range(15, 0, -1)
                if lease.set(f"es-test-suite:db:{db}", token, nx=True, ex=_SUITE_LEASE_S)
            ),
            None,
        )
        if claimed is None:
            raise RuntimeError("every Redis database 1..15 is claimed by another test session")
        try:
            yield f"redis://127.0.0.1:6379/{claimed}"
        finally:
            if lease.get(f"es-test-suite:db:{claimed}") == token.encode():
                lease.delete(f"es-test-suite:db:{claimed}")
            lease.close()


@pytest.fixture(scope="session")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MONGODB_URL")
    if external:
        yield external
        return
    port = svc.free_port()
    log = Path(tmp_path_factory.mktemp("mongo-wire")) / "mongo-wire.log"
    proc = svc.start_mongo_wire(port, log_path=log)
    try:
        yield f"mongodb://127.0.0.1:{port}"
    finally:
        svc.stop(proc)


@pytest.fixture
async def clean_redis(redis_url: str) -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(redis_url)
    await client.flushdb()
    await client.aclose()
    yield redis_url


@pytest.fixture
def database_name() -> str:
    """A fresh database per test: nothing leaks between tests, on mongoeco and on real MongoDB."""
    return f"es_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(clean_redis: str, mongo_url: str, database_name: str) -> Settings:
    return Settings.model_validate(
        {
            "coresignal_api_key": TEST_API_KEY,
            "coresignal_base_url": "http://127.0.0.1:9/cdapi",  # replaced by the simulator fixtures
            "redis_url": clean_redis,
            "mongodb_url": mongo_url,
            "mongodb_database": database_name,
            "retry_base_s": 0.05,
            "retry_cap_s": 0.5,
            "limiter_max_ahead_s": 0.25,
            "log_json": True,
        }
    )


@asynccontextmanager
async def opened_services(settings: Settings) -> AsyncIterator[Services]:
    """The long-lived clients for these settings; the test's database is dropped afterwards."""
    opened = await Services.open(settings)
    try:
        yield opened
    finally:
        await opened.store.drop_database()
        await opened.close()


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Services]:
    async with opened_services(settings) as opened:
        yield opened


MakeSimulator = Callable[..., Awaitable[RunningSimulator]]


@pytest.fixture
async def make_simulator() -> AsyncIterator[MakeSimulator]:
    """Start simulators on free ports (`SimulatorConfig` fields as keywords); all stop after the test.

    Defaults: the test API key, and a collect budget of 400 rps so tests are not slowed by it."""
    started: list[RunningSimulator] = []

    async def make(**config: object) -> RunningSimulator:
        fields: dict[str, object] = {"api_keys": [TEST_API_KEY], "collect_rps": 400, **config}
        running = await start(SimulatorConfig.model_validate(fields))
        started.append(running)
        return running

    try:
        yield make
    finally:
        for running in started:
            await running.close()


def population_ids(count: int, first: int = 0) -> list[int]:
    """The ids of simulated employees `first` .. `first + count - 1` (they exist upstream)."""
    return [Population.id_at(i) for i in range(first, first + count)]


async def enqueue_ids(services: Services, employee_ids: Iterable[int], *, source: str = "test") -> Receipt:
    """A run over these ids, exactly as `employee-sync enqueue ids FILE` makes one."""
    text = "\n".join(map(str, employee_ids))
    return await enqueue_lines(services, read_lines(io.BytesIO(text.encode())), "ids", source=source)


@asynccontextmanager
async def worker_context(settings: Settings) -> AsyncIterator[dict[str, Any]]:
    """A worker's arq `ctx`, as a fleet worker builds it at start-up (real client, limiter, stores);
    its database is dropped afterwards."""
    context: dict[str, Any] = {"settings": settings}
    await startup(context)
    try:
        yield context
    finally:
        await context["services"].store.drop_database()
        await shutdown(context)
