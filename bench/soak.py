"""Soak: N collect jobs through a K-worker fleet against the simulator (its limit raised), with the
same ids collected again and again so the Mongo-wire server (slow as a collection grows) is not
the bottleneck. Prints each worker's RSS after the first 1,000 jobs and at the end (goal: growth
at most 10 %), Redis memory before and after, and jobs/s.

    ./dev bench soak [--jobs 100000] [--workers 4] [--concurrency 20] [--ids 1000] [--rps 1000]

Everything is started here on spare loopback ports: a redis-server of its own (so its memory is
the fleet's alone), the Mongo-wire server (or MONGODB_URL), the simulator, the workers. Jobs come
as runs of `--ids` ids over a few disjoint id groups, RUNS_IN_FLIGHT runs at a time, each group
collected again once its previous run finished (the same employee cannot be queued twice at once).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from config import Settings
from devstack import processes as svc
from jobs.inputs import read_lines
from jobs.producers import enqueue_lines
from jobs.runs import RunState
from simulator.population import Population
from worker.errors import RedisUnavailableError, StoreUnavailableError
from worker.runtime import Services

API_KEY = "soak-key-0123456789abcdef01234567"
RUNS_IN_FLIGHT = 3
ID_GROUPS = RUNS_IN_FLIGHT + 1
FIRST_SAMPLE_JOBS = 1000


@dataclass
class Result:
    jobs: int
    seconds: float
    rss_first_mib: list[float]
    rss_last_mib: list[float]
    redis_before_mib: float
    redis_after_mib: float
    redis_keys_after: int


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def redis_mib(client: aioredis.Redis) -> float:
    return int((await client.info("memory"))["used_memory"]) / 2**20


async def _poll(services: Services, running: dict[str, str], groups: deque[str]) -> tuple[int, int]:
    """(jobs of runs that finished since the last poll, jobs done so far in runs still running)."""
    finished = in_flight = 0
    for run_id in list(running):
        state = await services.store.runs.state_of(run_id)
        processed = (await services.progress.counts(run_id)).get("processed", 0)
        if state is RunState.FINISHED:
            finished += processed
            groups.append(running.pop(run_id))
        elif state is not RunState.RUNNING:
            raise RuntimeError(f"run {run_id} ended {state}")
        else:
            in_flight += processed
    return finished, in_flight


def _group_text(group: int, size: int) -> str:
    return "\n".join(str(Population.id_at(group * size + i)) for i in range(size))


async def drive(settings: Settings, args: argparse.Namespace, pids: list[int]) -> Result:
    services = await Services.open(settings)
    try:
        before = await redis_mib(services.redis)
        groups = deque(
            "\n".join(str(Population.id_at(g * args.ids + i)) for i in range(args.ids))
            for g in range(ID_GROUPS)
        )
        total_runs = -(-args.jobs // args.ids)
        running: dict[str, str] = {}
        submitted = finished_jobs = 0
        rss_first: list[float] = []
        started = last_print = time.monotonic()
        while finished_jobs < total_runs * args.ids:
            while len(running) < RUNS_IN_FLIGHT and submitted < total_runs:
                text = groups.popleft()
                receipt = await enqueue_lines(
                    services, read_lines(io.BytesIO(text.encode())), "ids", source="soak"
                )
                running[receipt.run_id] = text
                submitted += 1
            await asyncio.sleep(0.5)
            try:
                finished, in_flight = await _poll(services, running, groups)
            except (StoreUnavailableError, RedisUnavailableError) as exc:  # a busy box: ask again
                print(f"soak: status unavailable ({exc}); retrying", file=sys.stderr)
                continue
            finished_jobs += finished
            done = finished_jobs + in_flight
            if not rss_first and done >= FIRST_SAMPLE_JOBS:
                rss_first = [rss_mib(pid) for pid in pids]
            if time.monotonic() - last_print > 15:
                last_print = time.monotonic()
                rate = done / (last_print - started)
                print(f"soak: {done:,} jobs, {rate:.0f} jobs/s, RSS {[round(rss_mib(p)) for p in pids]} MiB",
                      file=sys.stderr)  # fmt: skip
        seconds = time.monotonic() - started
        return Result(
            finished_jobs, seconds, rss_first, [rss_mib(pid) for pid in pids], before,
            await redis_mib(services.redis), int(await services.redis.dbsize()),
        )  # fmt: skip
    finally:
        await services.store.drop_database()
        await services.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--ids", type=int, default=1000, help="ids per run (repeated across runs)")
    parser.add_argument(
        "--rps", type=int, default=1000, help="the simulator's collect limit (and the fleet's)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        return _soak(args, Path(tmp))


def _soak(args: argparse.Namespace, tmp: Path) -> int:
    redis_port, sim_port = svc.free_port(), svc.free_port()
    server = shutil.which("redis-server") or "redis-server"
    procs: list[subprocess.Popen[bytes]] = []
    external = os.environ.get("MONGODB_URL")
    try:
        redis_argv = [
            server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        procs.append(svc.spawn(redis_argv, log_path=tmp / "redis.log"))
        svc.wait_for_port("127.0.0.1", redis_port, timeout_s=10, proc=procs[-1])
        mongo_url = external
        if mongo_url is None:
            mongo_port = svc.free_port()
            procs.append(svc.start_mongo_wire(mongo_port, log_path=tmp / "mongo.log"))
            mongo_url = f"mongodb://127.0.0.1:{mongo_port}"
        population = str(ID_GROUPS * args.ids)
        sim_args = ["--api-key", API_KEY, "--population", population, "--collect-rps", str(args.rps)]
        procs.append(svc.start_simulator(sim_port, extra=sim_args, log_path=tmp / "simulator.log"))
        env = {
            "CORESIGNAL_API_KEY": API_KEY,
            "CORESIGNAL_BASE_URL": f"http://127.0.0.1:{sim_port}/cdapi",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "MONGODB_URL": mongo_url,
            "MONGODB_DATABASE": f"soak_{uuid.uuid4().hex[:8]}",
            "COLLECT_RPS": str(args.rps),
            "LOG_LEVEL": "WARNING",
            "LOG_JSON": "true",
        }
        settings = Settings.model_validate({k.lower(): v for k, v in env.items()})
        argv = svc.employee_sync_argv("worker", "--concurrency", str(args.concurrency))
        workers = [svc.spawn(argv, env=env, log_path=tmp / f"worker-{i}.log") for i in range(args.workers)]
        procs += workers
        result = asyncio.run(drive(settings, args, [w.pid for w in workers]))
    finally:
        for proc in reversed(procs):
            svc.stop(proc)
    _print(args, result)
    return 0


def _print(args: argparse.Namespace, r: Result) -> None:
    print(f"soak: {r.jobs:,} collect jobs, {args.workers} workers x {args.concurrency}, "
          f"runs of {args.ids} repeated ids, simulator limit {args.rps} rps")  # fmt: skip
    print("| worker | RSS after 1k jobs | RSS at the end | growth |")
    print("|---|---|---|---|")
    for i, (first, last) in enumerate(zip(r.rss_first_mib, r.rss_last_mib, strict=True)):
        print(f"| {i} | {first:.1f} MiB | {last:.1f} MiB | {100 * (last - first) / first:+.1f} % |")
    print(f"Redis used_memory: {r.redis_before_mib:.1f} MiB before, {r.redis_after_mib:.1f} MiB after "
          f"({r.redis_keys_after:,} keys: each finished run keeps its counters {30} days)")  # fmt: skip
    print(f"throughput: {r.jobs / r.seconds:.0f} jobs/s ({r.jobs:,} in {r.seconds:.0f} s)")
