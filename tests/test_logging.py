"""Logging: JSON lines with run/job context, one summary per job, and never the API key."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from cli.wiring import run_fleet_worker
from config import Settings, configure_logging
from config.logging import redact_text
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from simulator.app import start
from simulator.config import SimulatorConfig
from simulator.population import Population
from tests.conftest import TEST_API_KEY, with_overrides
from worker.runtime import Services


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield
    logging.getLogger().handlers.clear()
    structlog.reset_defaults()


async def test_worker_logs_carry_context_and_never_the_api_key(
    settings: Settings, services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = await start(
        SimulatorConfig(population=50, api_keys=[TEST_API_KEY], collect_rps=200, error_rate_5xx=0.3)
    )
    try:
        configure_logging("INFO", json=True, secrets=[TEST_API_KEY])
        worker_settings = with_overrides(settings, coresignal_base_url=sim.base_url, max_tries=10)
        ids = "\n".join(str(Population.id_at(i)) for i in range(10)) + "\n13\n"
        receipt = await enqueue_lines(services, read_lines(io.BytesIO(ids.encode())), "ids", source="t")
        await run_fleet_worker(worker_settings, burst=True)
    finally:
        await sim.close()

    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert TEST_API_KEY not in output
    events = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    summaries = [e for e in events if e["event"] == "job.done" and e["job"] == "collect"]
    assert len(summaries) == 11  # one summary line per finished job
    assert {e["run_id"] for e in summaries} == {receipt.run_id}
    assert all(e["job_id"].startswith("collect:") and e["job_try"] >= 1 for e in summaries)
    assert any(e["event"] == "job.retry" for e in events)  # the 5xx faults were retried


def test_a_secret_inside_a_message_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True, secrets=[TEST_API_KEY])
    structlog.get_logger("t").error(
        "upstream said", detail=f"bad key {TEST_API_KEY}", nested={"k": [TEST_API_KEY]}
    )
    logging.getLogger("third.party").warning("header apikey=%s", TEST_API_KEY)
    err = capsys.readouterr().err
    assert TEST_API_KEY not in err
    assert err.count("***") == 3


def test_passwords_in_service_urls_are_masked() -> None:
    text = "connecting to redis://default:s3cret@cache:6379/0 and mongodb://app:pw@db:27017"
    assert (
        redact_text(text, [])
        == "connecting to redis://default:***@cache:6379/0 and mongodb://app:***@db:27017"
    )
