"""Enqueue benchmark: how long a producer takes to accept N names (parse, store inputs, enqueue).

    uv run python -m bench enqueue [--counts 10000,100000]

Uses real Redis and a Mongo-wire server started on a free port (or MONGODB_URL). Reports the
batches sent (one Lua call per batch: pipelined, not one round trip per job) and Redis memory.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
import uuid

from cli import services as svc
from config import Settings
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from worker import keys
from worker.runtime import Services


async def measure(settings: Settings, count: int) -> tuple[int, float, int, int]:
    services = await Services.open(settings)
    try:
        await services.redis.flushdb()
        before = int((await services.redis.info("memory"))["used_memory"])
        data = "\n".join(f"person-{n:07d}" for n in range(count)).encode()
        started = time.perf_counter()
        receipt = await enqueue_lines(services, read_lines(io.BytesIO(data)), "names", source="bench")
        elapsed = time.perf_counter() - started
        after = int((await services.redis.info("memory"))["used_memory"])
        depth = await services.queue.depth(keys.JOB_QUEUE)
        assert receipt.accepted == count == depth
        await services.redis.flushdb()
        await services.store.client.drop_database(settings.mongodb_database)
        return count, elapsed, -(-count // settings.input_chunk_size), after - before
    finally:
        await services.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench enqueue", description=__doc__)
    parser.add_argument("--counts", default="10000,100000")
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
                rows.append(asyncio.run(measure(settings, count)))
    finally:
        if mongo is not None:
            svc.stop(mongo)
    print("| names | seconds | names/s | input chunks stored | Redis memory added |")
    print("|---|---|---|---|---|")
    for count, elapsed, batches, memory in rows:
        print(
            f"| {count:,} | {elapsed:.2f} | {count / elapsed:,.0f} | {batches} | {memory / 2**20:.1f} MiB |"
        )
    return 0
