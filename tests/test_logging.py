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


@pytest.mark.slow
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


# -- console mode never prints a password (review #13) ----------------------------------------------

REDIS_PASSWORD, MONGO_PASSWORD = "s3cretpw", "hunter2-p@ss"
PASSWORDED = {
    "redis_url": f"redis://:{REDIS_PASSWORD}@127.0.0.1:1/0",
    "mongodb_url": f"mongodb://app:{MONGO_PASSWORD.replace('@', '%40')}@127.0.0.1:2",
}


def _passworded_settings() -> Settings:
    return Settings.model_validate({"coresignal_api_key": TEST_API_KEY, **PASSWORDED})


def _fail_holding(settings: Settings) -> None:
    ctx = {"settings": settings, "url": settings.redis_url}  # frame locals a rich traceback would print
    raise RuntimeError(f"could not reach {settings.mongodb_url} (ctx has {len(ctx)} entries)")


def _assert_no_password(output: str) -> None:
    for secret in (REDIS_PASSWORD, MONGO_PASSWORD, MONGO_PASSWORD.replace("@", "%40"), TEST_API_KEY):
        assert secret not in output


def test_a_console_mode_traceback_never_shows_a_settings_password(capsys: pytest.CaptureFixture[str]) -> None:
    settings = _passworded_settings()
    configure_logging("INFO", json=False, secrets=settings.secrets())
    try:
        _fail_holding(settings)
    except RuntimeError:
        structlog.get_logger("employee_sync.collect").exception("collect.internal_error")
    err = capsys.readouterr().err
    assert "collect.internal_error" in err and "Traceback (most recent call last)" in err
    assert "_fail_holding" in err and "could not reach mongodb://app:***@127.0.0.1:2" in err
    _assert_no_password(err)


def test_a_third_party_logger_exception_in_console_mode_is_redacted_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _passworded_settings()
    configure_logging("INFO", json=False, secrets=settings.secrets())
    try:
        _fail_holding(settings)
    except RuntimeError:
        logging.getLogger("arq.jobs").exception("job failed")  # arq logs failed jobs like this
    err = capsys.readouterr().err
    assert "job failed" in err and "RuntimeError: could not reach" in err
    _assert_no_password(err)


def test_settings_never_print_a_service_password() -> None:
    settings = _passworded_settings()
    for shown in (repr(settings), str(settings), f"{settings!r}"):
        _assert_no_password(shown)
        assert "redis://:***@127.0.0.1:1/0" in shown
    assert settings.redis_url == PASSWORDED["redis_url"]  # masked in print only, not in use


def test_the_decoded_spelling_of_a_password_is_a_secret_too() -> None:
    assert {MONGO_PASSWORD, "hunter2-p%40ss", REDIS_PASSWORD} <= set(_passworded_settings().secrets())
