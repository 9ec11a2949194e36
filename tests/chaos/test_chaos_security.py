"""Secrets stay secret: the API key, bearer tokens and service passwords never show in logs, run
records, dead-letters or metrics; the HTTP API refuses anonymous calls; plain http upstream is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from config import Settings
from devstack import processes as svc
from tests.conftest import enqueue_ids, population_ids, with_overrides
from tests.fleet_support import simulator_process, start_worker, wait_for, worker_env
from worker.runtime import Services

pytestmark = pytest.mark.slow

SECRET_KEY = "refused-key-S3CR3T-0123456789abcdef"  # a key the simulator does not know: every call is a 401
REDIS_PASSWORD = "redis-pass-S3CR3T-42"
TOKEN = "bearer-token-S3CR3T-7"


def own_redis_with_password(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = svc.free_port()
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--requirepass", REDIS_PASSWORD]
    proc = svc.spawn(argv, log_path=tmp_path / "redis.log")
    svc.wait_for_port("127.0.0.1", port, timeout_s=10, proc=proc)
    return proc, port


async def test_no_secret_reaches_logs_records_or_metrics(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    redis_proc, redis_port = own_redis_with_password(tmp_path)
    own = with_overrides(settings, redis_url=f"redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}/0")
    try:
        local = await Services.open(own)
        with simulator_process(tmp_path) as port:
            env = {**worker_env(own, port), "CORESIGNAL_API_KEY": SECRET_KEY, "LOG_LEVEL": "DEBUG"}
            worker = start_worker(env, tmp_path / "worker.log")
            try:
                receipt = await enqueue_ids(local, population_ids(20))
                await wait_for(local, receipt.run_id, timeout_s=60)
            finally:
                svc.stop(worker)
        status = subprocess.run(
            svc.employee_sync_argv("status", receipt.run_id, "--json"),
            env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        letters = await local.store.dead_letters.list(receipt.run_id)
        run = await local.store.runs.get(receipt.run_id)
        metrics = await _metrics_text(local)
        await local.close()
    finally:
        svc.stop(redis_proc)

    assert len(letters) == 20 and all("401" in d.reason for d in letters)
    everything = "\n".join(
        [
            (tmp_path / "worker.log").read_text(errors="replace"),
            status.stdout,
            status.stderr,
            json.dumps([d.as_dict() for d in letters], default=str),
            json.dumps(run, default=str),
            metrics,
        ]
    )
    for secret in (SECRET_KEY, REDIS_PASSWORD):
        assert secret not in everything


async def _metrics_text(services: Services) -> str:
    try:
        from worker.metrics_server import render_metrics
    except ImportError:  # pragma: no cover - metrics are part of the package
        return ""
    body, _ = await render_metrics(services)
    return body.decode()


def test_the_http_api_refuses_calls_without_a_valid_token(settings: Settings, tmp_path: Path) -> None:
    port = svc.free_port()
    env = {
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "API_TOKENS": TOKEN,
        "LOG_JSON": "true",
    }
    log = tmp_path / "api.log"
    api = svc.spawn(svc.employee_sync_argv("api", "--port", str(port)), env=env, log_path=log)
    try:
        svc.wait_for_port("127.0.0.1", port, timeout_s=30, proc=api)
        base = f"http://127.0.0.1:{port}"
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN}"}):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(f"{base}/v1/runs", headers=headers), timeout=10)
            assert refused.value.code == 401
            refused.value.close()  # an HTTPError holds the response's socket
        ok = urllib.request.Request(f"{base}/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(ok, timeout=10) as resp:
            assert resp.status == 200
    finally:
        svc.stop(api)
    assert TOKEN not in log.read_text(errors="replace")


def test_the_api_will_not_start_without_tokens(settings: Settings) -> None:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "API_TOKENS": "",
    }
    result = subprocess.run(
        svc.employee_sync_argv("api", "--port", str(svc.free_port())),
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2 and "API_TOKENS" in result.stderr


def test_a_worker_refuses_a_plain_http_upstream(settings: Settings) -> None:
    env = {
        **os.environ,
        "CORESIGNAL_API_KEY": "k" * 32,
        "CORESIGNAL_BASE_URL": "http://api.coresignal.com/cdapi",
    }
    result = subprocess.run(
        svc.employee_sync_argv("worker"), env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2 and "https" in result.stderr
