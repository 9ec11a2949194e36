"""Webhook benchmark: the receiver under a burst, and notice-to-refresh lag at the 54 rps budget.

    uv run python -m bench webhooks [--burst-ids 10000] [--batch-sizes 100,1000] [--lag-ids 540]
                                    [--background-ids 3000]

Everything is real and on loopback, each in its own process: Redis (a database claimed with the
test suite's lease, so no test session is disturbed), a Mongo-wire server (or MONGODB_URL), the
simulator, `employee-sync api` and `employee-sync worker` processes.

1. Burst: `--burst-ids` member ids POSTed to one subscription's receiver URL in bodies of each
   `--batch-sizes` size, 16 at a time. Reported: accepted notices/s over the burst's wall time and
   the p50/p99/max time to the 202 (each 202 means the body is in the MongoDB inbox). No worker
   runs, so this is the receiver alone.
2. Lag: an ordinary run of `--background-ids` ids is started first (the fleet is busy), then
   `--lag-ids` notices arrive in bodies of 100; two worker processes collect at 54 rps. For each
   noticed id, lag = the refreshed profile's fetch time minus the time its body was received.
   Webhook refreshes are queued ahead of the ordinary run, so the lag is about
   lag-ids / 52.4 rps (the limiter's 3 % margin), not (background + lag) / 52.4.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import redis

from config import Settings
from devstack import processes as svc
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from jobs.webhook_notices import new_token, receiver_url, token_hash
from simulator.population import Population
from worker.run_model import RunKind, RunState
from worker.runtime import Services

API_KEY = "bench-key-0123456789abcdef0123456789"
TOKEN = "bench-api-token-0123456789abcdef"
CONCURRENCY = 16
LEASE_S = 3 * 3600
DEADLINE_S = 900.0


@contextmanager
def claimed_redis_db() -> Iterator[str]:
    """A Redis database of our own, claimed like the test suite claims one (15 down to 1)."""
    lease = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    token = uuid.uuid4().hex
    db = next(
        (n for n in range(15, 0, -1) if lease.set(f"es-test-suite:db:{n}", token, nx=True, ex=LEASE_S)), None
    )
    if db is None:
        raise RuntimeError("every Redis database 1..15 is claimed")
    try:
        redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}").flushdb()
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        redis.Redis.from_url(f"redis://127.0.0.1:6379/{db}").flushdb()
        if lease.get(f"es-test-suite:db:{db}") == token.encode():
            lease.delete(f"es-test-suite:db:{db}")
        lease.close()


def env_of(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "API_TOKENS": TOKEN,
        "CORESIGNAL_API_KEY": API_KEY,
        "CORESIGNAL_BASE_URL": settings.coresignal_base_url,
        "WEBHOOK_PUBLIC_BASE_URL": settings.webhook_public_base_url or "",
        "WEBHOOK_FRESH_WINDOW_S": "0",
        "LOG_LEVEL": "INFO",
        "LOG_JSON": "true",
    }


async def add_subscription(services: Services, base_url: str, *, collect_unknown: bool) -> str:
    """A subscription record as `subscriptions create` leaves it (no upstream call needed here)."""
    token = new_token()
    now = datetime.now(UTC)
    await services.store.webhooks.save_subscription(
        {
            "_id": f"bench-{uuid.uuid4().hex[:8]}",
            "type": "experience",
            "selection": "all",
            "ids": None,
            "query_json": None,
            "collect_unknown": collect_unknown,
            "token_hash": token_hash(token),
            "status": "active",
            "created_at": now,
            "expiring_at": now,
            "lineage_started_at": now,
            "renewed_at": None,
            "last_delivery_at": None,
            "silence_after_s": 9 * 86_400,
        }
    )
    return receiver_url(base_url, token)


def bodies(ids: list[int], size: int) -> list[bytes]:
    return [
        json.dumps([{"member_id": i, "status": "changed"} for i in ids[s : s + size]]).encode()
        for s in range(0, len(ids), size)
    ]


async def post_all(url: str, payloads: list[bytes]) -> tuple[float, list[float], dict[int, int]]:
    """POST every body, CONCURRENCY at a time; returns (wall seconds, per-request seconds, codes)."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for payload in payloads:
        queue.put_nowait(payload)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            payload = queue.get_nowait()
            started = time.perf_counter()
            async with session.post(url, data=payload, headers={"Content-Type": "application/json"}) as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    return time.perf_counter() - started, latencies, codes


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def burst(settings: Settings, api_base: str, total: int, size: int) -> dict[str, Any]:
    services = await Services.open(settings)
    try:
        url = await add_subscription(services, api_base, collect_unknown=False)
        ids = [10_000_000 + size * 1_000_000 + n for n in range(total)]
        wall_s, latencies, codes = await post_all(url, bodies(ids, size))
        stored = len(await services.store.webhooks.pending(limit=100_000))
        return {
            "batch": size,
            "bodies": len(latencies),
            "ids": total,
            "wall_s": wall_s,
            "notices_per_s": total / wall_s,
            "p50_ms": pct(latencies, 0.5) * 1000,
            "p99_ms": pct(latencies, 0.99) * 1000,
            "max_ms": max(latencies) * 1000,
            "codes": codes,
            "stored": stored,
        }
    finally:
        await services.close()


async def lag(settings: Settings, api_base: str, lag_ids: int, background_ids: int) -> dict[str, Any]:
    """With the workers running: start the busy ordinary run, send the notices, wait for the refresh."""
    services = await Services.open(settings)
    try:
        background = [Population.id_at(i) for i in range(lag_ids, lag_ids + background_ids)]
        text = "\n".join(map(str, background)).encode()
        await enqueue_lines(services, read_lines(io.BytesIO(text)), "ids", source="bench-background")
        await _until_background_done(services, min(100, background_ids // 4))  # the fleet is at work
        url = await add_subscription(services, api_base, collect_unknown=True)
        noticed = [Population.id_at(i) for i in range(lag_ids)]
        before = await _background_done(services)
        _, _, codes = await post_all(url, bodies(noticed, 100))
        assert codes == {202: len(bodies(noticed, 100))}, codes
        started = time.perf_counter()
        await _until_refreshed(services)
        return {
            "ids": lag_ids,
            "background": background_ids,
            "wall_s": time.perf_counter() - started,
            "background_done": await _background_done(services) - before,
            "noticed": noticed,
        }
    finally:
        await services.close()


async def lag_figures(settings: Settings, row: dict[str, Any]) -> dict[str, Any]:
    """After the workers stopped (so the reads do not compete with them): the per-id lags."""
    services = await Services.open(settings)
    try:
        lags = await _lags(services, row.pop("noticed"))
    finally:
        await services.close()
    return {
        **row,
        "p50_s": pct(lags, 0.5),
        "p99_s": pct(lags, 0.99),
        "max_s": max(lags),
        "mean_s": statistics.fmean(lags),
    }


async def _until_background_done(services: Services, count: int) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while True:
            if await _background_done(services) >= count:
                return
            await asyncio.sleep(0.1)


async def _until_refreshed(services: Services) -> None:
    async with asyncio.timeout(DEADLINE_S):
        while True:
            backlog = await services.store.webhooks.backlog()
            runs = await services.store.runs.list_runs(state=None, before=None, limit=200)
            hooks = [r for r in runs if r.kind is RunKind.WEBHOOK]
            if backlog == 0 and hooks and all(r.state is RunState.FINISHED for r in hooks):
                return
            await asyncio.sleep(0.5)


async def _lags(services: Services, noticed: list[int]) -> list[float]:
    """Per noticed id: its refreshed profile's fetch time minus when its body was received."""
    received = await services.store.webhooks.received_by_run()
    lags = []
    for employee_id in noticed:
        doc = await services.store.employees.get(employee_id)
        assert doc is not None, employee_id
        sync = doc["sync"]
        lags.append((sync["synced_at"] - received[sync["run_id"]]).total_seconds())
    return lags


async def _background_done(services: Services) -> int:
    runs = await services.store.runs.list_runs(state=None, before=None, limit=200)
    counts = [await services.progress.counts(r.run_id) for r in runs if r.kind is RunKind.IDS]
    return sum(c.get("processed", 0) for c in counts)


def _print(burst_rows: list[dict[str, Any]], lag_row: dict[str, Any] | None) -> None:
    print("| ids | per body | bodies | wall s | accepted notices/s | p50 ack ms | p99 ack ms | max ack ms "
          "| answers | bodies pending in inbox (cumulative) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in burst_rows:
        print(
            f"| {r['ids']:,} | {r['batch']} | {r['bodies']} | {r['wall_s']:.2f} | {r['notices_per_s']:,.0f} "
            f"| {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['max_ms']:.1f} | {r['codes']} | {r['stored']} |"
        )
    if lag_row is None:
        return
    print()
    print("| noticed ids | ordinary run queued behind | lag p50 s | lag p99 s | lag max s | mean s "
          "| wall s | ordinary items collected meanwhile |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    r = lag_row
    print(
        f"| {r['ids']} | {r['background']} | {r['p50_s']:.2f} | {r['p99_s']:.2f} | {r['max_s']:.2f} "
        f"| {r['mean_s']:.2f} | {r['wall_s']:.1f} | {r['background_done']} |"
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench webhooks", description=__doc__)
    parser.add_argument("--burst-ids", type=int, default=10_000)
    parser.add_argument("--batch-sizes", default="100,1000")
    parser.add_argument("--lag-ids", type=int, default=540)
    parser.add_argument("--background-ids", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logs = Path(os.environ.get("BENCH_LOG_DIR", "/tmp")) / f"bench-webhooks-{uuid.uuid4().hex[:6]}"
    logs.mkdir(parents=True, exist_ok=True)
    with (
        claimed_redis_db() as redis_url,
        _stack(redis_url, args, logs) as (settings, api_base, start_workers),
    ):
        lag_row = None
        if args.lag_ids:  # first, so the burst's pending bodies are not in the workers' way
            with start_workers():
                measured = asyncio.run(lag(settings, api_base, args.lag_ids, args.background_ids))
            lag_row = asyncio.run(lag_figures(settings, measured))
            redis.Redis.from_url(redis_url).flushdb()
        burst_rows = [
            asyncio.run(burst(settings, api_base, args.burst_ids, int(size)))
            for size in args.batch_sizes.split(",")
        ]
    _print(burst_rows, lag_row)
    print(f"\n(logs in {logs})")
    return 0


@contextmanager
def _stack(redis_url: str, args: argparse.Namespace, logs: Path) -> Iterator[tuple[Settings, str, Any]]:
    external = os.environ.get("MONGODB_URL")
    mongo_port, sim_port, api_port = svc.free_port(), svc.free_port(), svc.free_port()
    procs = []
    try:
        if not external:
            procs.append(svc.start_mongo_wire(mongo_port, log_path=logs / "mongo.log"))
        population = str(max(1000, args.lag_ids + args.background_ids + 10))
        extra = ("--api-key", API_KEY, "--collect-rps", "54", "--population", population)
        procs.append(svc.start_simulator(sim_port, extra=extra, log_path=logs / "simulator.log"))
        settings = Settings.model_validate(
            {
                "redis_url": redis_url,
                "mongodb_url": external or f"mongodb://127.0.0.1:{mongo_port}",
                "mongodb_database": f"bench_{uuid.uuid4().hex[:8]}",
                "coresignal_api_key": API_KEY,
                "coresignal_base_url": f"http://127.0.0.1:{sim_port}/cdapi",
                "webhook_public_base_url": f"http://127.0.0.1:{api_port}",
                "webhook_fresh_window_s": 0,
            }
        )
        env = env_of(settings)
        api = svc.spawn(
            svc.employee_sync_argv("api", "--port", str(api_port)), env=env, log_path=logs / "api.log"
        )
        procs.append(api)
        svc.wait_for_port("127.0.0.1", api_port, timeout_s=60, proc=api)

        @contextmanager
        def start_workers() -> Iterator[None]:
            workers = [
                svc.spawn(svc.employee_sync_argv("worker"), env=env, log_path=logs / f"worker{n}.log")
                for n in range(args.workers)
            ]
            try:
                yield
            finally:
                for worker in workers:
                    svc.stop(worker)

        yield settings, f"http://127.0.0.1:{api_port}", start_workers
    finally:
        for proc in reversed(procs):
            svc.stop(proc)
