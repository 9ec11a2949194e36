"""Acceptance benchmark: how long a producer takes to accept N items, and what Redis holds for it.

    uv run python -m bench enqueue [--counts 100000,1000000] [--kind ids|names]

Real Redis and a Mongo-wire server started on a free port (or MONGODB_URL). The run's inputs go to
MongoDB in chunks; Redis gets only the queue window. The largest Redis structure a run grows while
it is worked through is its per-run "counted" set, so that is measured too, filled to N members.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
import uuid
from dataclasses import dataclass

from config import Settings
from devstack import processes as svc
from jobs.inputs import InputKind, read_lines
from jobs.producers import enqueue_lines
from worker import keys
from worker.runtime import Services


@dataclass(frozen=True)
class Row:
    count: int
    seconds: float
    chunks: int
    queue_depth: int
    redis_after_accept_mib: float
    counted_set_mib: float


def _input(kind: InputKind, count: int) -> bytes:
    if kind == "ids":
        return "\n".join(str(10_000 + 7 * n) for n in range(count)).encode()
    return "\n".join(f"person-{n:07d}" for n in range(count)).encode()


async def _used_mib(services: Services) -> float:
    return int((await services.redis.info("memory"))["used_memory"]) / 2**20


async def measure(settings: Settings, kind: InputKind, count: int) -> Row:
    services = await Services.open(settings)
    try:
        await services.redis.flushdb()
        base = await _used_mib(services)
        data = _input(kind, count)
        started = time.perf_counter()
        receipt = await enqueue_lines(services, read_lines(io.BytesIO(data)), kind, source="bench")
        elapsed = time.perf_counter() - started
        assert receipt.accepted == count
        after_accept = await _used_mib(services) - base
        depth = await services.queue.depth(keys.JOB_QUEUE)
        chunks = await services.store.runs.count_input_chunks(receipt.run_id)
        counted = await _counted_set_mib(services, receipt.run_id, data)
        await services.redis.flushdb()
        await services.store.drop_database()
        return Row(count, elapsed, chunks, depth, after_accept, counted)
    finally:
        await services.close()


async def _counted_set_mib(services: Services, run_id: str, data: bytes) -> float:
    """Fill the run's counted set as if every item had finished, and measure it."""
    done_key = keys.run_done_key(run_id)
    items = [f"id:{line}" for line in data.decode().splitlines()]
    for start in range(0, len(items), 10_000):
        await services.redis.sadd(done_key, *items[start : start + 10_000])  # type: ignore[misc]
    return int(await services.redis.memory_usage(done_key) or 0) / 2**20


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench enqueue", description=__doc__)
    parser.add_argument("--counts", default="100000,1000000")
    parser.add_argument("--kind", default="ids", choices=["ids", "names"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args(argv)
    external = os.environ.get("MONGODB_URL")
    port = svc.free_port()
    mongo = None if external else svc.start_mongo_wire(port)
    settings = Settings.model_validate(
        {
            "redis_url": args.redis_url,
            "mongodb_url": external or f"mongodb://127.0.0.1:{port}",
            "mongodb_database": f"bench_{uuid.uuid4().hex[:8]}",
        }
    )
    rows = []
    try:
        with svc.redis_available(args.redis_url):
            for count in (int(c) for c in args.counts.split(",")):
                rows.append(asyncio.run(measure(settings, args.kind, count)))
    finally:
        if mongo is not None:
            svc.stop(mongo)
    print(
        f"| {args.kind} | seconds to accept | items/s | input chunks in MongoDB | queue depth after "
        "| Redis added by acceptance | run's counted set when all done |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r.count:,} | {r.seconds:.1f} | {r.count / r.seconds:,.0f} | {r.chunks} | {r.queue_depth} "
            f"| {r.redis_after_accept_mib:.1f} MiB | {r.counted_set_mib:.1f} MiB |"
        )
    return 0
