"""Bulk benchmark: N profiles via collect vs via bulk, the batched sink vs raw bulk_write, and the
memory of ingesting one 10,000-record file.

    uv run python -m bench bulk [--profiles 500] [--sink-docs 2000] [--file-records 10000] [--plot FILE.png]

Everything on loopback: the simulator as a subprocess (default rate limits: collect 54, bulk 27;
data requests ready 2 s + 0.5 ms per record after their POST), real Redis, and MongoDB: the
Mongo-wire server (mongoeco, in memory) on a free port unless MONGODB_URL names a real one. The
table says which. The Mongo-wire server slows down as a collection grows, so its sink figures are
not MongoDB figures; the ratio batched / raw on the same server is the meaningful number.
`--plot` draws the two paths' progress: profiles done (the run's own counter) over wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.plots import Panel, Series, draw
from config import Settings, configure_logging
from devstack import processes as svc
from jobs.inputs import read_lines
from jobs.producers import Intake, enqueue_lines
from simulator.population import Population
from worker.errors import StoreUnavailableError
from worker.run_model import utcnow
from worker.runtime import Services

API_KEY = "bench-key-0123456789abcdef0123456"


@dataclass(frozen=True)
class PathRow:
    path: str
    profiles: int
    seconds: float
    requests: dict[str, int]
    credits: int
    state: str
    progress: list[tuple[float, int]]  # (seconds since enqueue, items processed), every 0.25 s


def _sim(port: int, method: str, path: str, body: object = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sim/{path}", data=data, method=method,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.load(response))


async def run_path(settings: Settings, sim_port: int, via: str, count: int) -> PathRow:
    from cli.wiring import run_fleet_worker
    from jobs.runs import get_status

    _sim(sim_port, "POST", "reset")
    services = await Services.open(settings)
    try:
        await services.redis.flushdb()
        text = "\n".join(str(Population.id_at(i)) for i in range(count))
        intake = Intake(bulk=via == "bulk")
        started = time.perf_counter()
        receipt = await enqueue_lines(
            services, read_lines(io.BytesIO(text.encode())), "ids", source="bench", intake=intake
        )
        progress: list[tuple[float, int]] = []
        sampler = asyncio.create_task(_sample_progress(services, receipt.run_id, started, progress))
        try:
            await run_fleet_worker(settings, burst=True)
        finally:
            sampler.cancel()
        elapsed = time.perf_counter() - started
        processed = (await services.progress.counts(receipt.run_id)).get("processed", 0)
        progress.append((elapsed, processed))
        status = await get_status(services, receipt.run_id)
        stats = _sim(sim_port, "GET", "stats")
        requests = {cls: int(v["accepted"]) for cls, v in stats["classes"].items() if v["accepted"]}
        await services.store.drop_database()
        return PathRow(
            via, count, elapsed, requests, int(stats["credits_charged"]), str(status and status.state.value),
            progress,
        )  # fmt: skip
    finally:
        await services.close()


async def _sample_progress(
    services: Services, run_id: str, started: float, into: list[tuple[float, int]]
) -> None:
    while True:
        processed = (await services.progress.counts(run_id)).get("processed", 0)
        into.append((time.perf_counter() - started, processed))
        await asyncio.sleep(0.25)


def plot(rows: list[PathRow], path: str) -> None:
    panel = Panel(
        title=f"{rows[0].profiles:,} profiles: collect (one request each) vs bulk (data requests)",
        series=[
            Series(f"{r.path}: {r.seconds:.1f} s", [t for t, _ in r.progress], [n for _, n in r.progress])
            for r in rows
        ],
        xlabel="seconds since the run was enqueued",
        ylabel="profiles done",
        limit=rows[0].profiles,
        limit_label="all of them",
        ymax=rows[0].profiles * 1.1,
    )
    draw([panel], path)


async def sink_ratio(settings: Settings, docs: int, batch: int) -> tuple[float, float, int]:
    """Documents/s: EmployeeSink.upsert_many vs raw PyMongo bulk_write of the same documents.

    Both write the same new profiles in the same batches into empty collections on one server;
    a batch the server drops (the Mongo-wire server misses heartbeats under load) is written again,
    as a job would, on both sides; the number of such retries is reported."""
    from pymongo import AsyncMongoClient, InsertOne
    from pymongo.errors import PyMongoError

    population = Population(seed=42, size=docs)
    found = (population.profile(Population.id_at(i)) for i in range(docs))
    profiles = [p for p in found if p is not None]
    batches = [profiles[start : start + batch] for start in range(0, len(profiles), batch)]
    services = await Services.open(settings)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    retries = 0

    async def again(write: Any) -> None:
        nonlocal retries
        for attempt in range(6):
            try:
                await write()
                return
            except (StoreUnavailableError, PyMongoError):
                if attempt == 5:
                    raise
                retries += 1
                await asyncio.sleep(1)

    try:
        started = time.perf_counter()
        for part in batches:
            await again(
                lambda part=part: services.store.employees.upsert_many(part, run_id="b", fetched_at=utcnow())
            )
        sink_s = time.perf_counter() - started
        raw = client[settings.mongodb_database + "_raw"]["employees"]
        started = time.perf_counter()
        for part in batches:
            docs_ = [{"_id": p["id"], "profile": p, "sync": {"synced_at": utcnow()}} for p in part]
            await again(lambda docs_=docs_: raw.bulk_write([InsertOne(d) for d in docs_], ordered=False))
        raw_s = time.perf_counter() - started
        await client.drop_database(settings.mongodb_database + "_raw")
        await services.store.drop_database()
        return len(profiles) / sink_s, len(profiles) / raw_s, retries
    finally:
        await client.close()
        await services.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench bulk", description=__doc__)
    parser.add_argument("--profiles", type=int, default=500)
    parser.add_argument("--sink-docs", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--file-records", type=int, default=10_000)
    parser.add_argument("--plot", metavar="FILE.png")
    parser.add_argument(
        "--redis-url", help="a Redis database of its own (default: one claimed like the tests do)"
    )
    args = parser.parse_args(argv)
    with _redis_database(args.redis_url) as redis_url:
        args.redis_url = redis_url
        return _main(args)


@contextlib.contextmanager
def _redis_database(explicit: str | None) -> Iterator[str]:
    """A database nobody else uses: the benchmark flushes it. Claimed with the test suite's lease
    keys (tests/conftest.py), so a test session running at the same time never gets the same one."""
    if explicit:
        yield explicit
        return
    import redis

    base = "redis://127.0.0.1:6379/0"
    with svc.redis_available(base):
        lease = redis.Redis.from_url(base)
        token = uuid.uuid4().hex
        db = next(
            (d for d in range(15, 0, -1) if lease.set(f"es-test-suite:db:{d}", token, nx=True, ex=7200)), None
        )
        if db is None:
            raise RuntimeError("every Redis database 1..15 is claimed")
        try:
            yield f"redis://127.0.0.1:6379/{db}"
        finally:
            if lease.get(f"es-test-suite:db:{db}") == token.encode():
                lease.delete(f"es-test-suite:db:{db}")
            lease.close()


def _main(args: argparse.Namespace) -> int:
    configure_logging("WARNING", json=False, secrets=[API_KEY])
    external = os.environ.get("MONGODB_URL")
    mongo_port = svc.free_port()
    mongo = None if external else svc.start_mongo_wire(mongo_port)
    mongo_url = external or f"mongodb://127.0.0.1:{mongo_port}"
    server = "MongoDB at MONGODB_URL" if external else "Mongo-wire server (mongoeco, in memory)"
    sim_port = svc.free_port()
    population = max(args.profiles, args.file_records)
    sim = svc.start_simulator(sim_port, extra=["--api-key", API_KEY, "--population", str(population)])
    settings = Settings.model_validate({
        "coresignal_api_key": API_KEY, "coresignal_base_url": f"http://127.0.0.1:{sim_port}/cdapi",
        "redis_url": args.redis_url, "mongodb_url": mongo_url,
        "mongodb_database": f"bench_{uuid.uuid4().hex[:8]}", "worker_concurrency": 20,
        "bulk_poll_first_s": 0.5, "bulk_poll_cap_s": 2, "job_timeout_s": 60, "log_level": "WARNING",
        "bulk_ingest_batch": 500 if external else 100,  # the Mongo-wire server stalls on big writes
    })  # fmt: skip
    try:
        with svc.redis_available(args.redis_url):
            print(f"MongoDB for every figure below: {server}\n", flush=True)
            rows = [asyncio.run(run_path(settings, sim_port, via, args.profiles)) for via in VIAS]
            _print_paths(rows)
            if args.plot:
                plot(rows, args.plot)
                print(f"plot: {args.plot}", file=sys.stderr)
            _print_sink(*asyncio.run(sink_ratio(settings, args.sink_docs, args.batch)), args)
            _print_rss(_rss_of_ingest(settings, sim_port, args.file_records))
    finally:
        svc.stop(sim)
        if mongo is not None:
            svc.stop(mongo)
    return 0


VIAS = ("collect", "bulk")


def _print_paths(rows: list[PathRow]) -> None:
    print("| path | profiles | wall time | requests by class | credits | run |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        requests = ", ".join(f"{k} {v}" for k, v in sorted(r.requests.items()))
        print(f"| {r.path} | {r.profiles:,} | {r.seconds:.1f} s | {requests} | {r.credits:,} | {r.state} |")
    print(flush=True)


def _print_sink(sink_dps: float, raw_dps: float, retries: int, args: Any) -> None:
    print(f"| sink, {args.sink_docs:,} new profiles in batches of {args.batch} | documents/s |")
    print("|---|---|")
    print(f"| EmployeeSink.upsert_many (read hashes + bulk_write) | {sink_dps:,.0f} |")
    print(f"| raw PyMongo bulk_write (InsertOne) | {raw_dps:,.0f} |")
    print(f"| ratio (goal >= 0.8) | {sink_dps / raw_dps:.2f} |")
    print(f"| batches written again (server dropped them) | {retries} |\n", flush=True)


def _print_rss(rss: dict[str, Any]) -> None:
    print(f"| ingest of one {rss['records']:,}-record file | value |")
    print("|---|---|")
    for key in (
        "compressed_bytes",
        "records",
        "batches_written",
        "rss_before_mib",
        "rss_peak_mib",
        "seconds",
    ):
        print(f"| {key} | {rss[key]} |")
    print(f"| writes | {rss['writes']} |")


def _rss_of_ingest(settings: Settings, sim_port: int, records: int) -> dict[str, Any]:
    """In a fresh process (so the peak is this ingest's): one data request, one file, streamed."""
    fields = {**json.loads(settings.model_dump_json()), "coresignal_api_key": API_KEY, "api_tokens": ""}
    env = {**os.environ, "BENCH_SETTINGS": json.dumps(fields), "BENCH_RECORDS": str(records)}
    _sim(
        sim_port,
        "PATCH",
        "config",
        {"bulk_file_records": records, "bulk_base_delay_s": 0.5, "bulk_per_record_s": 0},
    )
    out = subprocess.run(
        [sys.executable, "-m", "bench.bulk_rss"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench.bulk_rss failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
