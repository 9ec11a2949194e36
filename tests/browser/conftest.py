"""A whole fleet for the browser tests: the simulator, two workers and the HTTP API as real processes on
real Redis and the Mongo-wire server, and Debian's Chromium driven by Playwright (no browser download).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from browser_support import CHROMIUM, CHROMIUM_ARGS, POPULATION, TOKEN, Stack
from playwright.sync_api import Browser, Page, sync_playwright

from config import Settings
from devstack import processes as svc
from tests.conftest import TEST_API_KEY
from tests.fleet_support import simulator_process, start_worker, worker_env


@pytest.fixture(scope="module")
def stack(redis_url: str, mongo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir = Path(tmp_path_factory.mktemp("dashboard-fleet"))
    flushed = redis.Redis.from_url(redis_url)
    flushed.flushdb()
    flushed.close()
    settings = Settings.model_validate(
        {
            "coresignal_api_key": TEST_API_KEY,
            "redis_url": redis_url,
            "mongodb_url": mongo_url,
            "mongodb_database": f"es_test_{uuid.uuid4().hex[:12]}",
        }
    )
    with simulator_process(log_dir, "--credits", "1000000", population=POPULATION) as sim_port:
        env = worker_env(settings, sim_port)
        workers = [start_worker(env, log_dir / f"worker-{n}.log", concurrency=10) for n in range(2)]
        port = svc.free_port()
        # Subscriptions need a URL the upstream calls back: this API, on loopback (http allowed there).
        api_env = {**env, "API_TOKENS": TOKEN, "WEBHOOK_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
        argv = svc.employee_sync_argv("api", "--host", "127.0.0.1", "--port", str(port))
        api = svc.spawn(argv, env=api_env, log_path=log_dir / "api.log")
        try:
            svc.wait_for_port("127.0.0.1", port, timeout_s=30, proc=api)
            yield Stack(
                f"http://127.0.0.1:{port}",
                settings,
                log_dir / "api.log",
                log_dir,
                f"http://127.0.0.1:{sim_port}",
            )
        finally:
            svc.stop(api)
            for worker in workers:
                svc.stop(worker)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: `./dev test` installs it (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[Page]:
    """A fresh context per test: its own sessionStorage, no cookies carried over."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    try:
        yield opened
    finally:
        opened.screenshot(path=str(tmp_path / "last.png"), full_page=True)  # an artifact on failure too
        context.close()


@pytest.fixture
def screenshot_copy(request: pytest.FixtureRequest) -> Path | None:
    option = request.config.getoption("--dashboard-screenshot")
    return None if option is None else Path(option)
