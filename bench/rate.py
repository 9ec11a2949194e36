"""Rate benchmark: K processes x C concurrent loops against the simulator for T seconds.

    uv run python -m bench rate [--seconds 10] [--scenarios 1x10,2x20,4x25,8x10] [--class collect]
                                [--plot FILE.png]

Every process books slots from the one Redis limiter and calls the simulator, which is the
referee: it counts accepted requests, 429s and the maximum accepted in any sliding second.
`--plot` draws the requests the fleet sent per sliding second, one panel per scenario, against the
limit line (bench.plots, the same drawing as `bench peers --plot`).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import urllib.request
from collections import Counter
from dataclasses import dataclass
from typing import Any

import redis

from bench.fleet_start import launch_together
from bench.plots import Panel, draw, sliding_second_series
from bench.rate_worker import SEARCH_BODY
from devstack import processes as svc
from worker import keys

DEFAULT_SCENARIOS = "1x10,2x20,4x25,8x10"
LIMITS = {"collect": 54, "search": 18}


@dataclass(frozen=True)
class RateResult:
    processes: int
    concurrency: int
    seconds: float
    limit_rps: int
    accepted: int
    rejected_429: int
    max_in_any_second: int
    accepted_rps: float
    other: dict[str, int]
    sent_at: list[float]  # wall time of every request sent, all processes

    @property
    def utilisation(self) -> float:
        return self.accepted_rps / self.limit_rps


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return dict(json.load(resp))


def _post(url: str) -> None:
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=5):
        pass


def _warm_search(sim_port: int, api_key: str) -> None:
    """Build the simulator's profiles once, so the measured seconds are not its cold first scan."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{sim_port}/cdapi/v2/employee_clean/search/es_dsl?items_per_page=10",
        data=json.dumps(SEARCH_BODY).encode(),
        headers={"apikey": api_key, "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=120):
        pass


def run_scenario(
    *,
    sim_port: int,
    api_key: str,
    redis_url: str,
    processes: int,
    concurrency: int,
    seconds: float,
    endpoint_class: str = "collect",
    margin: float = 0.03,
) -> RateResult:
    """Reset the simulator and the limiter bucket, run the processes, read the referee's verdict."""
    admin = f"http://127.0.0.1:{sim_port}/_sim"
    if endpoint_class == "search":
        _warm_search(sim_port, api_key)
    _post(f"{admin}/reset")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    # A bucket that was used before and went idle: a lost (missing) TAT starts one booking horizon
    # (2 s) late on purpose (review #16), which is not what this benchmark measures.
    client.set(keys.limiter_tat_key(api_key, endpoint_class), "1", px=3_600_000)  # type: ignore[arg-type]
    client.close()
    argv = [
        sys.executable, "-m", "bench.rate_worker",
        "--base-url", f"http://127.0.0.1:{sim_port}/cdapi", "--api-key", api_key,
        "--redis-url", redis_url, "--endpoint-class", endpoint_class,
        "--rps", str(LIMITS[endpoint_class]), "--margin", str(margin),
        "--concurrency", str(concurrency), "--seconds", str(seconds),
    ]  # fmt: skip
    procs = launch_together(argv, processes)
    other: Counter[str] = Counter()
    sent_at: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"bench process failed with {proc.returncode}")
        report = json.loads(out)
        other.update({k: v for k, v in report["counts"].items() if k not in ("200", "429")})
        sent_at.extend(report["sent"])
    stats = _get(f"{admin}/stats")["classes"][endpoint_class]
    return RateResult(
        processes=processes,
        concurrency=concurrency,
        seconds=seconds,
        limit_rps=LIMITS[endpoint_class],
        accepted=stats["accepted"],
        rejected_429=stats["rejected_429"],
        max_in_any_second=stats["max_in_any_second"],
        accepted_rps=float(stats["accepted_rps"] or 0.0),
        other=dict(other),
        sent_at=sorted(sent_at),
    )


def _table(results: list[RateResult], endpoint_class: str) -> str:
    head = (
        f"| class | processes x concurrency | seconds | accepted | accepted rps | limit | utilisation "
        f"| max in any sliding second | 429s | other errors |\n|{'---|' * 10}"
    )
    rows = [
        f"| {endpoint_class} | {r.processes} x {r.concurrency} | {r.seconds:g} | {r.accepted} "
        f"| {r.accepted_rps:.2f} | {r.limit_rps} | {r.utilisation:.1%} | {r.max_in_any_second} "
        f"| {r.rejected_429} | {sum(r.other.values())} |"
        for r in results
    ]
    return "\n".join([head, *rows])


def plot(results: list[RateResult], endpoint_class: str, path: str) -> None:
    panels = [
        Panel(
            title=f"{endpoint_class}: {r.processes} processes x {r.concurrency} loops, one limiter "
            f"({r.accepted_rps:.1f} accepted rps, max {r.max_in_any_second} in any second, "
            f"{r.rejected_429} 429s)",
            series=[sliding_second_series("sent, fleet-wide", r.sent_at)],
            xlabel="seconds since the first request",
            ylabel="sent in the preceding second",
            limit=r.limit_rps,
            limit_label=f"limit {r.limit_rps}/s",
            ymax=r.limit_rps * 1.5,
        )
        for r in results
    ]
    draw(panels, path, panel_height_in=3)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rate", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--scenarios", default=DEFAULT_SCENARIOS, help="KxC,KxC,...")
    parser.add_argument("--class", dest="endpoint_class", default="collect", choices=sorted(LIMITS))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--plot", metavar="FILE.png")
    args = parser.parse_args(argv)
    api_key = secrets.token_hex(16)
    sim_port = svc.free_port()
    results = []
    with svc.redis_available(args.redis_url):
        sim = svc.start_simulator(sim_port, extra=["--api-key", api_key])
        try:
            for scenario in args.scenarios.split(","):
                processes, concurrency = (int(x) for x in scenario.lower().split("x"))
                result = run_scenario(
                    sim_port=sim_port, api_key=api_key, redis_url=args.redis_url,
                    processes=processes, concurrency=concurrency, seconds=args.seconds,
                    endpoint_class=args.endpoint_class,
                )  # fmt: skip
                results.append(result)
                print(f"done: {scenario}", file=sys.stderr, flush=True)
        finally:
            svc.stop(sim)
    print(_table(results, args.endpoint_class))
    if args.plot:
        plot(results, args.endpoint_class, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0
