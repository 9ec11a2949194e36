"""What one dashboard refresh costs the API: CPU of the API process per request, and wall time.

    uv run python -m bench dashboard [--runs 1000] [--dead-letters 10000] [--data-requests 200]
                                     [--subscriptions 20] [--queued 500] [--calls 100]

Seeds MongoDB with RUNS runs (20 of them running, with live counters in Redis), DEAD_LETTERS
letters, DATA_REQUESTS ledger rows and SUBSCRIPTIONS webhook subscriptions (each with an id list of
5,000 ids, which a page must not read), fills the queue with QUEUED collect jobs (the feeder's window;
the oldest 40 marked started, as two workers of 20 would have them), writes two minutes of fleet
figures for 8 workers to Redis,
starts the real API process
(`employee-sync api`), and calls each JSON endpoint the page polls CALLS times over one keep-alive
connection (as the page's `fetch` does). The API's CPU is the scheduler's run time of its threads
(/proc/<pid>/task/*/schedstat, in ns) before and after, so the figure is the API's own work (HTTP
handling, the Redis and MongoDB clients, JSON), not the stores'. The
Mongo-wire server stands in for MongoDB and its inserts slow down as a collection grows (10,000
letters take about 5 minutes to seed there, in batches of 100 so that no one insert stalls the
server past the driver's heartbeat); MONGODB_URL set to a real MongoDB seeds in seconds.

The page polls the fleet figures and the runs page every 3 s, dead letters and bulk requests every
10 s, freshness and subscriptions every 30 s; a "refresh" below is one fleet call plus one runs
page, with the slower panels added in proportion.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from pymongo import AsyncMongoClient

from config import Settings
from devstack import processes as svc
from jobs.runs import new_run_id
from worker import keys
from worker.fleet_stats import FleetRecorder
from worker.queue import JobSpec
from worker.run_model import DataRequest, Run, RunKind, RunState
from worker.runtime import Services
from worker.store.ledger import row_id_of
from worker.store.mongo import DEAD_LETTERS

SEED_BATCH = 100  # the Mongo-wire server's insert cost grows with the collection: keep each one short

TOKEN = "bench-dashboard-token-0123456789"
LIVE = "live counters of the 20 running runs"
ENDPOINTS = {
    "baseline: /healthz (no work)": "/healthz",
    "fleet": "/v1/dashboard/fleet",
    LIVE: "/v1/dashboard/live-runs?run_ids={running}",
    "runs page (20)": "/v1/runs?limit=20",
    "dead letters page (25)": "/v1/dashboard/dead-letters?limit=25",
    "bulk requests page (20)": "/v1/dashboard/data-requests?limit=20",
    "subscriptions page (20)": "/v1/dashboard/subscriptions?limit=20",
    "freshness": "/v1/dashboard/freshness",
}
# Reads per 3 s poll, as api/static/app.js makes them: the fleet figures and the shown runs' live
# counters each poll; the runs page every 30 s (and when a run changes state: rare in a long sync);
# dead letters and bulk requests every 10 s; freshness and subscriptions every 30 s.
PER_REFRESH = {
    "baseline: /healthz (no work)": 0.0,
    "fleet": 1.0,
    LIVE: 1.0,
    "runs page (20)": 0.1,
    "dead letters page (25)": 0.3,
    "bulk requests page (20)": 0.3,
    "subscriptions page (20)": 0.1,
    "freshness": 0.1,
}
# The page before it polled live counters: the whole runs page every poll, no live counters.
PER_REFRESH_BEFORE = {**PER_REFRESH, LIVE: 0.0, "runs page (20)": 1.0}


@dataclass(frozen=True)
class Row:
    name: str
    cpu_ms: float  # API process CPU per call
    wall_p50_ms: float
    first_wall_ms: float  # the first call: caches cold


def _cpu_s(pid: int) -> float:
    """CPU time of every thread of the process, in ns from the scheduler (not 10 ms ticks)."""
    return sum(int(p.read_text().split()[0]) for p in Path(f"/proc/{pid}/task").glob("*/schedstat")) / 1e9


class _Client:
    """One keep-alive connection, as the page's `fetch` polls over one: the figure is the API's work
    per poll, not a TCP accept and close per call."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self._conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def get(self, path: str) -> Any:
        self._conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
        with self._conn.getresponse() as resp:
            body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:200]!r}")
        return json.loads(body)

    def close(self) -> None:
        self._conn.close()


def measure(base: str, pid: int, path: str, calls: int, name: str) -> Row:
    client = _Client(base)
    try:
        walls = []
        started = time.perf_counter()
        client.get(path)
        first = time.perf_counter() - started
        cpu_before = _cpu_s(pid)
        for _ in range(calls):
            t = time.perf_counter()
            client.get(path)
            walls.append(time.perf_counter() - t)
        cpu = _cpu_s(pid) - cpu_before
    finally:
        client.close()
    return Row(name, 1000 * cpu / calls, 1000 * statistics.median(walls), 1000 * first)


@dataclass(frozen=True)
class Sizes:
    runs: int
    dead_letters: int
    data_requests: int
    subscriptions: int
    queued: int


async def seed(settings: Settings, sizes: Sizes) -> None:
    services = await Services.open(settings)
    try:
        await services.redis.flushdb()
        created = datetime.now(UTC) - timedelta(hours=1)
        runs = sizes.runs
        for n in range(runs):
            run = Run(run_id=new_run_id(), kind=RunKind.IDS, source="bench", accepted=1000)
            run.created_at = created + timedelta(seconds=n)
            run.inputs_complete = True
            run.state = RunState.RUNNING if n >= runs - 20 else RunState.FINISHED
            await services.store.runs.create(run)
            if run.state is RunState.RUNNING:
                await services.progress.add(run.run_id, {"processed": 400, "inserted": 300, "unchanged": 100})
        await _seed_ledger(services, sizes.data_requests)
        await _seed_subscriptions(services, sizes.subscriptions)
        await _seed_letters(settings, sizes.dead_letters)
        await _seed_fleet(services)
        await _seed_queue(services, sizes.queued)
    finally:
        await services.close()


async def _seed_letters(settings: Settings, count: int) -> None:
    # The driver's monitor reads with the connect timeout: a long insert must not make it drop the pool.
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        settings.mongodb_url, tz_aware=True, socketTimeoutMS=600_000, connectTimeoutMS=600_000
    )
    start = datetime.now(UTC) - timedelta(days=1)
    reasons = ["upstream 400: invalid id", "upstream 403: forbidden", "worker died while running it"]
    try:
        collection = client[settings.mongodb_database][DEAD_LETTERS]
        for offset in range(0, count, SEED_BATCH):
            await collection.insert_many(
                [
                    {
                        "_id": f"{'b' * 32}:id:{n}", "run_id": "b" * 32, "item_key": f"id:{n}",
                        "reason": reasons[n % 3], "error_type": "PermanentError", "status": 400,
                        "attempts": 1, "at": start + timedelta(seconds=n),
                    }
                    for n in range(offset, min(count, offset + SEED_BATCH))
                ]
            )  # fmt: skip
    finally:
        await client.close()


async def _seed_ledger(services: Services, count: int) -> None:
    """Ledger rows of one bulk run, as jobs/bulk plans them: half done with two files, half planned."""
    run_id = new_run_id()
    start = datetime.now(UTC) - timedelta(hours=2)
    ledger = services.store.ledger
    for seq in range(count):
        row = DataRequest(
            row_id=row_id_of(run_id, seq), run_id=run_id, seq=seq, kind="id_file",
            fingerprint=f"bench-{seq}", chunk_seqs=[seq], created_at=start + timedelta(seconds=seq),
        )  # fmt: skip
        await ledger.plan(row)
        if seq % 2:
            continue
        at = row.created_at + timedelta(seconds=5)
        await ledger.begin_submit(row.row_id, at)
        await ledger.submitted(row.row_id, uuid.uuid4().hex, at)
        await ledger.ready(row.row_id, ["json/part-00000.json.gz", "json/part-00001.json.gz"], at)
        await ledger.done(row.row_id)


async def _seed_subscriptions(services: Services, count: int) -> None:
    now = datetime.now(UTC)
    for n in range(count):
        await services.store.webhooks.save_subscription(
            {
                "_id": f"bench-sub-{n:04d}", "type": "experience", "selection": "ids",
                "ids": list(range(1, 5001)), "query_json": None, "collect_unknown": True,
                "token_hash": f"{n:064x}", "status": "active", "created_at": now - timedelta(days=n),
                "expiring_at": now + timedelta(days=91 - n), "lineage_started_at": now - timedelta(days=n),
                "renewed_at": None, "last_delivery_at": now - timedelta(hours=n),
                "silence_after_s": 9 * 86_400,
            }
        )  # fmt: skip


async def _seed_queue(services: Services, count: int, started: int = 40) -> None:
    jobs = [JobSpec(f"collect:id:{n}", ("b" * 32, f"id:{n}")) for n in range(count)]
    await services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, jobs)
    for job in jobs[:started]:
        # arq's in-progress key (worker/queue.py owns arq; a bench may name its key, as the tests do)
        await services.redis.set(f"arq:in-progress:{job.job_id}", b"1", px=3_600_000)


async def _seed_fleet(services: Services) -> None:
    """Two minutes of grants at ~52/s spread over 8 workers, their waits, credits and heartbeats."""
    recorders = [
        FleetRecorder(
            services.redis, api_key="bench", concurrency=20, host="bench", pid=n, flush_every_s=3600
        )
        for n in range(8)
    ]
    for recorder in recorders:
        await recorder.flush()
    now = int(recorders[0].now_s())
    for second in range(now - 130, now):
        for n in range(52):
            recorders[n % 8]._grants[("collect", second)] += 1
    for n, recorder in enumerate(recorders):
        for _ in range(150):
            recorder.observe_grant("collect", 0.01 * (n + 1))
        recorder.observe_response("collect", 200, 500_000 - n)
        await recorder.flush()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench dashboard", description=__doc__)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--dead-letters", type=int, default=10_000)
    parser.add_argument("--data-requests", type=int, default=200)
    parser.add_argument("--subscriptions", type=int, default=20)
    parser.add_argument("--queued", type=int, default=500, help="collect jobs waiting in the queue")
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    external = os.environ.get("MONGODB_URL")
    with svc.redis_available("redis://127.0.0.1:6379/0"), _claimed_db() as redis_url:
        return _bench(args, external, redis_url)


@contextlib.contextmanager
def _claimed_db() -> Iterator[str]:
    """A Redis database nobody else uses now, claimed with the test suite's lease (tests/conftest.py),
    so the bench never flushes a database a test session is using."""
    lease = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    token = uuid.uuid4().hex
    db = next((d for d in range(1, 16) if lease.set(f"es-test-suite:db:{d}", token, nx=True, ex=3600)), None)
    if db is None:
        raise RuntimeError("every Redis database 1..15 is claimed")
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}").flushdb()
        if lease.get(f"es-test-suite:db:{db}") == token.encode():
            lease.delete(f"es-test-suite:db:{db}")
        lease.close()


def _bench(args: argparse.Namespace, external: str | None, redis_url: str) -> int:
    mongo_port = svc.free_port()
    mongo = None if external else svc.start_mongo_wire(mongo_port)
    settings = Settings.model_validate(
        {
            "redis_url": redis_url,
            "mongodb_url": external or f"mongodb://127.0.0.1:{mongo_port}",
            "mongodb_database": f"bench_{uuid.uuid4().hex[:8]}",
        }
    )
    try:
        t = time.perf_counter()
        sizes = Sizes(args.runs, args.dead_letters, args.data_requests, args.subscriptions, args.queued)
        asyncio.run(seed(settings, sizes))
        seeded_s = time.perf_counter() - t
        print(f"seeded {sizes} in {seeded_s:.0f} s", flush=True)
        rows = _measure_api(settings, args.calls)
    finally:
        if mongo is not None:
            svc.stop(mongo)
    _print(rows, args)
    return 0


def _measure_api(settings: Settings, calls: int) -> list[Row]:
    port = svc.free_port()
    env = {
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "API_TOKENS": TOKEN,
        "LOG_LEVEL": "WARNING",
    }
    api = svc.spawn(svc.employee_sync_argv("api", "--port", str(port)), env=env)
    try:
        svc.wait_for_port("127.0.0.1", port, timeout_s=30, proc=api)
        base = f"http://127.0.0.1:{port}"
        running = ",".join(_running_run_ids(base))
        return [
            measure(base, api.pid, path.format(running=running), calls, name)
            for name, path in ENDPOINTS.items()
        ]
    finally:
        svc.stop(api)


def _running_run_ids(base: str) -> list[str]:
    """The ids the page would ask live counters for: the running runs it shows."""
    client = _Client(base)
    try:
        return [run["run_id"] for run in client.get("/v1/runs?state=running&limit=20")["runs"]]
    finally:
        client.close()


def _print(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\n{args.runs:,} runs (20 running), {args.dead_letters:,} dead letters, {args.data_requests:,} "
        f"data requests, {args.subscriptions:,} subscriptions, {args.queued:,} jobs queued, "
        f"{args.calls} calls each"
    )
    print("| endpoint | API CPU per call | wall p50 | first call (caches cold) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r.name} | {r.cpu_ms:.2f} ms | {r.wall_p50_ms:.1f} ms | {r.first_wall_ms:.1f} ms |")
    per_refresh = sum(r.cpu_ms * PER_REFRESH[r.name] for r in rows)
    before = sum(r.cpu_ms * PER_REFRESH_BEFORE[r.name] for r in rows)
    print(f"| **one refresh** (a 3 s poll as the page makes it) | **{per_refresh:.2f} ms** | | |")
    print(f"| one refresh if the runs page were read every poll (the page before) | {before:.2f} ms | | |")
