"""The served OpenAPI document is the contract: schemathesis, a third-party fuzzer, checks the API keeps it.

A real `employee-sync api` process on real Redis and the Mongo-wire server; schemathesis's own CLI
reads `/openapi.json` from it and runs every phase (examples, coverage, fuzzing, and the stateful
phase that follows the document's links: create a run, then read, pause, resume and cancel it) with
every check (`--checks all`: status codes, content types, response schemas, positive data accepted,
negative data rejected, auth not ignored, unsupported methods refused...). Bounded: 10 examples per
operation and phase and a 25 s budget, about 50 s in all with the start-up of both processes (measured
on two cores at load average 10). Any failure prints schemathesis's report, with the seed and a curl
command reproducing each failing request (`st run ... --seed N` replays the run).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_support import TOKEN

from config import Settings
from devstack import processes as svc
from tests.conftest import TEST_API_KEY
from worker.runtime import Services

# A contract fuzzer with a 25 s budget of its own: the full suite (CI) runs it, the fast loop does not.
pytestmark = pytest.mark.slow

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
MAX_ITEMS = 20  # small, so the document's maxItems and the 413 beyond it are reached
MAX_EXAMPLES = 10  # per operation and phase
MAX_TIME_S = 25  # schemathesis's own budget for the whole run
HARD_TIMEOUT_S = 240  # only if schemathesis itself hangs


@pytest.fixture
def api_url(settings: Settings, services: Services, tmp_path: Path) -> Iterator[str]:
    """The API as it is deployed: its own process, reading its settings from the environment.

    `services` is requested so the test's MongoDB database is dropped afterwards."""
    port, sim_port = svc.free_port(), svc.free_port()
    sim = svc.start_simulator(
        sim_port, extra=["--api-key", TEST_API_KEY, "--population", "50"], log_path=tmp_path / "sim.log"
    )
    env = {
        # Subscription routes talk to the upstream: the simulator, on loopback (never the real API).
        "CORESIGNAL_API_KEY": TEST_API_KEY,
        "CORESIGNAL_BASE_URL": f"http://127.0.0.1:{sim_port}/cdapi",
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "API_TOKENS": TOKEN,
        "API_MAX_ITEMS": str(MAX_ITEMS),
        "LOG_JSON": "true",
    }
    argv = svc.employee_sync_argv("api", "--port", str(port))
    proc = svc.spawn(argv, env=env, log_path=tmp_path / "api.log")
    try:
        svc.wait_for_port("127.0.0.1", port, timeout_s=30, proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        svc.stop(proc)
        svc.stop(sim)


def test_the_api_keeps_its_openapi_contract(api_url: str, tmp_path: Path) -> None:
    argv = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--generation-database",
        "none",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)}
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=HARD_TIMEOUT_S, cwd=tmp_path, env=env, check=False
    )

    report = f"{done.stdout}\n{done.stderr}"
    print(report)
    assert done.returncode == 0, report
    assert "No issues found" in report or "passed" in report, report
