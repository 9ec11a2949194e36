"""Prometheus metrics: what a burst worker records against the simulator, the scrape-time gauges, and
a worker process serving its registry on METRICS_PORT. Real Redis, the Mongo-wire server, the
simulator on a socket; nothing is mocked."""

from __future__ import annotations

import asyncio
import math
import re
import time
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.wiring import run_fleet_worker
from config import Settings
from devstack import processes as svc
from jobs.runs import RUN_STATES, RunState, get_status
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import TEST_API_KEY, MakeSimulator, enqueue_ids, with_overrides
from worker import keys
from worker.metrics import outcome_label
from worker.metrics_server import render_metrics
from worker.queue import JobSpec
from worker.runtime import Services

POPULATION = 300
MISSING_ID = 13  # a well-formed id the simulator answers 404 for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=POPULATION)


@pytest.fixture
def sim_settings(settings: Settings, simulator: RunningSimulator) -> Settings:
    return with_overrides(
        settings, coresignal_base_url=simulator.base_url, collect_rps=300, worker_concurrency=20
    )


async def admin(sim: RunningSimulator, method: str, path: str, body: object = None) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"http://{sim.host}:{sim.port}/_sim/{path}", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(services: Services) -> tuple[str, Samples]:
    body, content_type = await render_metrics(services)
    assert content_type.startswith("text/plain")
    text = body.decode()
    return text, parse(text)


LABEL_WORD = re.compile(r"[a-z_]{1,32}")


def assert_no_secret_labels(text: str, samples: Samples) -> None:
    """No key, no fingerprint; labels only from small vocabularies (so no run id, no employee id)."""
    assert TEST_API_KEY not in text
    assert keys.key_fingerprint(TEST_API_KEY) not in text
    for _, labels in samples:
        for label, label_value in labels:
            assert label_value != TEST_API_KEY, label
            if label == "le":  # histogram bucket bounds
                float(label_value)
            elif label in {"status", "code"}:
                assert re.fullmatch(r"\d{3}|error", label_value), label_value
            else:
                assert label in {
                    "endpoint_class",
                    "job",
                    "outcome",
                    "state",
                    "backend",
                    "kind",
                    "notice_status",
                }
                assert LABEL_WORD.fullmatch(label_value), f"{label}={label_value!r}"


@pytest.mark.slow
async def test_a_burst_run_is_counted_by_the_limiter_the_client_the_sink_and_the_jobs(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    await admin(simulator, "PATCH", "config", {"error_rate_5xx": 0.3, "credits": 10_000})
    settings = with_overrides(sim_settings, max_tries=20)
    wanted = [Population.id_at(i) for i in range(60)]
    receipt = await enqueue_ids(services, [*wanted, MISSING_ID])

    await run_fleet_worker(settings, burst=True, metrics=services.metrics)

    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED
    assert (status.counts.get("inserted"), status.counts.get("not_found")) == (60, 1)
    stats = await admin(simulator, "GET", "stats")
    upstream = {str(k): int(v) for k, v in dict(stats["status_counts"]).items()}  # type: ignore[call-overload]
    assert upstream.get("404") == 1 and upstream.get("503", 0) > 0, upstream

    text, samples = await scrape(services)

    # Every request drew one slot: each profile once, plus once more per 503 (retries draw new slots).
    grants = value(samples, "employee_sync_limiter_grants_total", endpoint_class="collect")
    assert grants == sum(upstream.values()) == 61 + upstream["503"]
    assert value(samples, "employee_sync_limiter_wait_seconds_count", endpoint_class="collect") == grants
    assert value(samples, "employee_sync_limiter_limit_rps", endpoint_class="collect") == 300
    assert value(samples, "employee_sync_limiter_limit_rps", endpoint_class="search") == settings.search_rps
    for code, count in upstream.items():
        assert (
            value(samples, "employee_sync_upstream_responses_total", endpoint_class="collect", status=code)
            == count
        ), code
    assert value(samples, "employee_sync_upstream_429_total", endpoint_class="collect") == 0
    credits = value(samples, "employee_sync_credits_remaining")
    assert not math.isnan(credits) and int(str(stats["credits_remaining"])) <= credits < 10_000

    assert value(samples, "employee_sync_sink_outcomes_total", outcome="inserted") == 60
    assert value(samples, "employee_sync_sink_outcomes_total", outcome="unchanged") == 0
    assert value(samples, "employee_sync_jobs_total", job="collect", outcome="inserted") == 60
    assert value(samples, "employee_sync_jobs_total", job="collect", outcome="not_found") == 1
    assert value(samples, "employee_sync_jobs_total", job="collect", outcome="retry") == upstream["503"]
    assert value(samples, "employee_sync_jobs_total", job="collect", outcome="failed") == 0

    assert value(samples, "employee_sync_runs", state="finished") == 1
    for state in RUN_STATES:
        assert ("employee_sync_runs", frozenset({("state", state)})) in samples, state
    assert value(samples, "employee_sync_queue_depth") == 0
    assert value(samples, "employee_sync_queue_oldest_job_age_seconds") == 0
    assert value(samples, "employee_sync_scrape_backend_up", backend="redis") == 1
    assert value(samples, "employee_sync_scrape_backend_up", backend="mongodb") == 1
    assert_no_secret_labels(text, samples)


@pytest.mark.slow
async def test_changed_unchanged_and_tombstoned_writes_are_counted(
    sim_settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    five = [Population.id_at(i) for i in range(5)]
    await enqueue_ids(services, five)
    await run_fleet_worker(sim_settings, burst=True, metrics=services.metrics)
    await admin(simulator, "POST", f"profiles/{five[1]}/mutate")
    await admin(simulator, "POST", f"profiles/{five[2]}/remove")

    replay = await enqueue_ids(services, five)
    await run_fleet_worker(sim_settings, burst=True, metrics=services.metrics)

    status = await get_status(services, replay.run_id)
    assert status is not None and status.state == RunState.FINISHED
    _, samples = await scrape(services)
    sink = {
        outcome: value(samples, "employee_sync_sink_outcomes_total", outcome=outcome)
        for outcome in ("inserted", "changed", "unchanged", "tombstoned")
    }
    assert sink == {"inserted": 5, "changed": 1, "unchanged": 3, "tombstoned": 1}
    assert value(samples, "employee_sync_runs", state="finished") == 2
    assert value(samples, "employee_sync_limiter_grants_total", endpoint_class="collect") == 10


async def test_the_queue_gauges_read_depth_and_the_oldest_due_job(services: Services) -> None:
    queue = services.queue
    await queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, [JobSpec("collect:id:1", ("r", "id:1"))])
    await queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, [JobSpec("collect:id:2", ("r", "id:2"))])
    await queue.enqueue_many(
        keys.JOB_QUEUE, keys.COLLECT_JOB, [JobSpec("collect:id:3", ("r", "id:3"))], defer_s=3600
    )
    await queue.enqueue_many(
        keys.JOB_QUEUE, keys.SEARCH_PAGE_JOB, [JobSpec("search:r:0", ("r", 0, 0))], priority=True
    )
    now_ms = int(time.time() * 1000)

    # Five seconds later every due job has waited ~5 s; the deferred one is not due yet.
    age = await queue.oldest_due_age_s(keys.JOB_QUEUE, now_ms=now_ms + 5000)
    assert age is not None and 5.0 <= age < 6.0
    # Jobs a worker has started are not waiting: with all three due ones started, nothing is.
    for job_id in ("collect:id:1", "collect:id:2", "search:r:0"):
        await services.redis.set(f"arq:in-progress:{job_id}", b"1")
    assert await queue.oldest_due_age_s(keys.JOB_QUEUE, now_ms=now_ms + 5000) is None
    # The deferred one, once due, is measured from its due time, not from when it was enqueued.
    age = await queue.oldest_due_age_s(keys.JOB_QUEUE, now_ms=now_ms + 3_600_000 + 2000)
    assert age is not None and 1.0 <= age < 3.0

    _, samples = await scrape(services)
    assert value(samples, "employee_sync_queue_depth") == 4
    assert value(samples, "employee_sync_queue_oldest_job_age_seconds") == 0


async def test_the_oldest_due_job_is_found_past_a_window_of_running_ones(services: Services) -> None:
    """The walk reads the queue oldest first in chunks and stops at the first job not started."""
    queue = services.queue
    batches = {0: range(0, 50), 10: range(50, 100), 20: range(100, 150)}  # due now, +10 s, +20 s
    for defer_s, numbers in batches.items():
        jobs = [JobSpec(f"collect:id:{n}", ("r", f"id:{n}")) for n in numbers]
        await queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, jobs, defer_s=defer_s)
    now_ms = int(time.time() * 1000)
    for n in range(80):  # the first batch and 30 of the second: more than one chunk is running
        await services.redis.set(f"arq:in-progress:collect:id:{n}", b"1")

    age = await queue.oldest_due_age_s(keys.JOB_QUEUE, now_ms=now_ms + 25_000)
    assert age is not None and 14.0 <= age <= 15.5  # job 80, due at +10 s

    for n in range(80, 100):
        await services.redis.set(f"arq:in-progress:collect:id:{n}", b"1")
    age = await queue.oldest_due_age_s(keys.JOB_QUEUE, now_ms=now_ms + 25_000)
    assert age is not None and 4.0 <= age <= 5.5  # job 100, due at +20 s
    for n in range(100, 150):
        await services.redis.set(f"arq:in-progress:collect:id:{n}", b"1")
    assert await queue.oldest_due_age_s(keys.JOB_QUEUE, now_ms=now_ms + 25_000) is None


def test_outcome_labels_stay_small() -> None:
    assert outcome_label("page 3: 1000 ids, 990 to collect, 10 fresh") == "page"
    assert outcome_label("stale: run is at page 4") == "stale"
    assert outcome_label("deferred: queue full") == "deferred"
    assert outcome_label("not_found") == "not_found"
    assert outcome_label("fed 120") == "fed"
    assert outcome_label("12345") == "other"


@pytest.mark.slow
async def test_a_worker_serves_its_metrics_on_metrics_port_and_a_second_one_on_it_is_refused(
    settings: Settings, services: Services, simulator: RunningSimulator, tmp_path: Path
) -> None:
    port = svc.free_port()
    env = {
        "CORESIGNAL_API_KEY": TEST_API_KEY,
        "CORESIGNAL_BASE_URL": simulator.base_url,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "COLLECT_RPS": "300",
        "LOG_JSON": "true",
        "METRICS_PORT": str(port),
    }
    receipt = await enqueue_ids(services, [Population.id_at(i) for i in range(5)])
    worker = svc.spawn(
        svc.employee_sync_argv("worker", "--concurrency", "5"), env=env, log_path=tmp_path / "w1"
    )
    try:
        await wait_finished(services, receipt.run_id, timeout_s=60)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as resp,
        ):
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=")
            text = await resp.text()
        samples = parse(text)
        assert value(samples, "employee_sync_limiter_grants_total", endpoint_class="collect") == 5
        assert value(samples, "employee_sync_jobs_total", job="collect", outcome="inserted") == 5
        assert value(samples, "employee_sync_runs", state="finished") == 1
        assert_no_secret_labels(text, samples)

        second = svc.spawn(svc.employee_sync_argv("worker"), env=env, log_path=tmp_path / "w2")
        code = await asyncio.to_thread(second.wait, 30)
        log = (tmp_path / "w2").read_text()
        assert code == 1, log
        assert f"cannot serve metrics on 127.0.0.1:{port}" in log and "Traceback" not in log
    finally:
        svc.stop(worker)


async def wait_finished(services: Services, run_id: str, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = await get_status(services, run_id)
        if status is not None and status.state == RunState.FINISHED:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} not finished after {timeout_s}s")
