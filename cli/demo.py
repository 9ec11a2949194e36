"""`employee-sync demo`: the whole pipeline on one machine, on embedded defaults.

Starts the simulator, the Mongo-wire server and a few workers (and Redis, if none answers), enqueues
profile names drawn from the simulator's population (plus a few bad lines, to show how they are
reported), shows live progress, and ends with a summary the simulator itself vouches for.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import sys
import tempfile
import time
import urllib.request
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from config import Settings, configure_logging
from devstack import processes as svc
from jobs.inputs import Rejected, read_lines
from jobs.producers import enqueue_lines
from jobs.runs import RunState, get_status
from simulator.population import Population
from worker.runtime import Services

DEMO_REDIS_URL = "redis://127.0.0.1:6379/3"  # a database of its own, flushed at start
DEMO_POPULATION = 20_000
BAD_LINES = ["not a profile url: https://example.com/in/x", "a b c", "https://www.linkedin.com/company/acme"]


def demo_names(count: int, seed: int = 42) -> list[str]:
    """Every third one as a full profile URL, as users paste them; the rest as shorthand names."""
    population = Population(seed=seed, size=DEMO_POPULATION, cache_size=16)
    step = max(1, DEMO_POPULATION // count)
    names = []
    for n, index in enumerate(range(0, step * count, step)):
        generated = population.profile(population.id_at(index))
        assert generated is not None
        slug = str(generated["shorthand_names"][0])
        names.append(f"https://www.linkedin.com/in/{slug}/" if n % 3 == 0 else slug)
    return names


def _sim_stats(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/_sim/stats", timeout=5) as resp:  # noqa: S310 - loopback
        return dict(json.load(resp))


async def run_demo(*, profiles: int, workers: int, concurrency: int) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="employee-sync-demo-"))
    api_key = secrets.token_hex(16)
    sim_port, mongo_port = svc.free_port(), svc.free_port()
    env = {
        "CORESIGNAL_API_KEY": api_key,
        "CORESIGNAL_BASE_URL": f"http://127.0.0.1:{sim_port}/cdapi",
        "REDIS_URL": DEMO_REDIS_URL,
        "MONGODB_URL": f"mongodb://127.0.0.1:{mongo_port}",
        "MONGODB_DATABASE": "employee_sync_demo",
        "WORKER_CONCURRENCY": str(concurrency),
        "LOG_JSON": "true",
    }
    settings = Settings.model_validate({k.lower(): v for k, v in env.items()})
    configure_logging("WARNING", secrets=[api_key])
    print(f"demo: logs and inputs in {workdir}", file=sys.stderr)
    with ExitStack() as stack:
        stack.enter_context(svc.redis_available(DEMO_REDIS_URL, log_path=workdir / "redis.log"))
        print("demo: starting the Mongo-wire server and the API simulator…", file=sys.stderr)
        mongo = svc.start_mongo_wire(mongo_port, log_path=workdir / "mongo-wire.log")
        stack.callback(svc.stop, mongo)
        sim_args = ["--population", str(DEMO_POPULATION), "--api-key", api_key]
        sim = svc.start_simulator(sim_port, extra=sim_args, log_path=workdir / "simulator.log")
        stack.callback(svc.stop, sim)
        services = await Services.open(settings)
        try:
            await services.redis.flushdb()
            fleet = [
                svc.spawn(svc.employee_sync_argv("worker"), env=env, log_path=workdir / f"worker-{i}.log")
                for i in range(workers)
            ]
            for proc in fleet:
                stack.callback(svc.stop, proc)
            print(f"demo: {workers} workers x {concurrency} concurrent jobs", file=sys.stderr)
            return await _sync(services, settings, workdir, profiles, f"http://127.0.0.1:{sim_port}")
        finally:
            await services.close()
    return 0


async def _sync(services: Services, settings: Settings, workdir: Path, profiles: int, sim: str) -> int:
    names_file = workdir / "names.txt"
    names_file.write_text("# demo input\n" + "\n".join([*demo_names(profiles), *BAD_LINES]) + "\n")

    def report(rejected: Rejected) -> None:
        print(f"demo: rejected {rejected}", file=sys.stderr)

    with names_file.open("rb") as stream:
        receipt = await enqueue_lines(
            services, read_lines(stream), "names", source=str(names_file), on_reject=report
        )
    print(f"demo: run {receipt.run_id}: {receipt.accepted} names accepted", file=sys.stderr)
    started = time.monotonic()
    deadline = started + 60 + 5 * receipt.accepted / settings.collect_rps
    tty = sys.stderr.isatty()
    recent: deque[tuple[float, int]] = deque(maxlen=7)  # ~3 s of samples for the current rate
    for tick in itertools.count():
        status = await get_status(services, receipt.run_id)
        assert status is not None
        collect = _sim_stats(sim)["classes"]["collect"]
        recent.append((time.monotonic(), int(collect["accepted"])))
        if tty or tick % 4 == 0 or status.state == RunState.FINISHED:
            _progress_line(status.as_dict(), collect, recent, settings, tty)
        if status.state == RunState.FINISHED or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    if tty:
        print(file=sys.stderr)
    assert status is not None
    return _summary(status.as_dict(), _sim_stats(sim), settings, await services.store.employees.count())


def _progress_line(
    counts: dict[str, Any],
    collect: dict[str, Any],
    recent: deque[tuple[float, int]],
    settings: Settings,
    tty: bool,
) -> None:
    (t0, n0), (t1, n1) = recent[0], recent[-1]
    rate = (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0
    line = (
        f"[{counts['accepted'] - counts['queued']:>5}/{counts['accepted']}] "
        f"{rate:5.1f} rps (limit {settings.collect_rps:g}) | new {counts['inserted']} "
        f"changed {counts['changed']} unchanged {counts['unchanged']} | not found {counts['not_found']} "
        f"| failed {counts['failed']} | 429s {collect['rejected_429']}"
    )
    print(f"\r{line}   " if tty else line, end="" if tty else "\n", file=sys.stderr, flush=True)


def _summary(counts: dict[str, Any], stats: dict[str, Any], settings: Settings, mirrored: int) -> int:
    collect = stats["classes"]["collect"]
    achieved = float(collect["accepted_rps"] or 0.0)
    utilisation = achieved / settings.collect_rps
    print("demo summary", file=sys.stderr)
    rows = [
        ("run state", counts["state"]),
        ("profiles synced", counts["done"]),
        ("documents in the mirror", mirrored),
        ("not found / failed", f"{counts['not_found']} / {counts['failed']}"),
        ("collect requests accepted", collect["accepted"]),
        ("achieved collect rps", f"{achieved:.1f} of {settings.collect_rps:g} ({utilisation:.1%})"),
        ("max accepted in any sliding second", collect["max_in_any_second"]),
        ("429s from the simulator", collect["rejected_429"]),
    ]
    for label, value in rows:
        print(f"  {label:<36} {value}", file=sys.stderr)
    ok = counts["state"] == RunState.FINISHED and collect["rejected_429"] == 0
    return 0 if ok else 1
