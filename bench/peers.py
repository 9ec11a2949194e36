"""Peer comparison: this project's limiter against the usual Python rate limiters, fleet-wide.

    uv run python -m bench peers [--seconds 20] [--scenarios 1x16,4x16,8x8] [--jitter-ms 0,20,50]
                                 [--strategies ours-adaptive,ours-3,...] [--micro-seconds 5] [--plot FILE.png]

Each row: K processes x C concurrent loops of (permit -> GET collect) for T seconds against the
simulator in its strict mode (a sliding one-second window, limit 54), with arrival jitter J (each
request delayed U(0, J) ms before the window counts it). Fresh state per row: the simulator's
counters reset and the Redis database flushed. One run per row, so read differences of a few
tenths of a percent as noise. Then a grants/s micro-benchmark of our limiter (one process,
16 tasks, a rate far above what it can grant, so every grant is a free slot: Redis round trips
and CPU only).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import secrets
import sys
import urllib.request
from dataclasses import dataclass
from typing import Any

import redis

from bench.fleet_start import launch_together
from bench.peers_micro import micro_benchmark
from bench.plots import Panel, draw, sliding_second_series
from devstack import processes as svc
from worker import keys

LIMIT = 54
STRATEGIES: dict[str, list[str]] = {
    "ours-adaptive": ["--strategy", "ours", "--margin-mode", "adaptive"],
    "ours-3%": ["--strategy", "ours", "--margin-mode", "fixed", "--margin", "0.03"],
    "ours-2%": ["--strategy", "ours", "--margin-mode", "fixed", "--margin", "0.02"],
    "ours-1%": ["--strategy", "ours", "--margin-mode", "fixed", "--margin", "0.01"],
    "aiolimiter": ["--strategy", "aiolimiter"],
    "aiolimiter-split": ["--strategy", "aiolimiter-split"],
    "limits-moving-window": ["--strategy", "limits"],
    "pyrate-redis": ["--strategy", "pyrate"],
}
WARM_UP_S = 5.0  # "after warm-up" columns ignore the first seconds (process start, first estimate)


@dataclass
class Row:
    strategy: str
    processes: int
    concurrency: int
    jitter_ms: float
    seconds: float
    accepted: int
    rejected_429: int
    late_429: int  # 429s after the warm-up
    max_accepted_1s: int
    accepted_rps: float
    max_sent_1s: int
    max_sent_100ms: int
    redis_per_grant: float | None
    cpu_pct: float
    margin: float | None
    given_up: int | None  # slots our limiter woke too late for and left unused
    sends: list[tuple[float, int]]

    @property
    def utilisation(self) -> float:
        return self.accepted_rps / LIMIT


def _http(url: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
    return dict(json.loads(raw)) if raw else {}


def max_in_window(times: list[float], window_s: float) -> int:
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window_s) - i for i, t in enumerate(ordered)), default=0)


def _fresh_state(sim: str, redis_url: str, api_key: str, jitter_ms: float) -> None:
    _http(f"{sim}/config", "PATCH", {"arrival_jitter_ms": jitter_ms})
    _http(f"{sim}/reset", "POST")
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    # A bucket that was used before and went idle: a lost (missing) TAT would start one booking
    # horizon (2 s) late on purpose (review #16), which is not what this table measures.
    client.set(keys.limiter_tat_key(api_key, "collect"), "1", px=3_600_000)
    client.close()


def run_row(
    strategy: str, processes: int, concurrency: int, jitter_ms: float, seconds: float, *,
    sim_port: int, api_key: str, redis_url: str,
) -> Row:  # fmt: skip
    sim = f"http://127.0.0.1:{sim_port}/_sim"
    _fresh_state(sim, redis_url, api_key, jitter_ms)
    argv = [
        sys.executable, "-m", "bench.peers_worker", *STRATEGIES[strategy],
        "--base-url", f"http://127.0.0.1:{sim_port}/cdapi", "--api-key", api_key, "--redis-url", redis_url,
        "--limit", str(LIMIT), "--processes", str(processes), "--concurrency", str(concurrency),
        "--seconds", str(seconds),
    ]  # fmt: skip
    procs = launch_together(argv, processes)
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=seconds + 120)
        if proc.returncode != 0:
            raise RuntimeError(f"{strategy}: bench process failed with {proc.returncode}")
        outs.append(json.loads(out))
    start_at = min(float(out["start_at"]) for out in outs)
    stats = _http(f"{sim}/stats")["classes"]["collect"]
    sends = sorted((float(t), int(s)) for out in outs for t, s in out["sends"])
    grants = sum(int(out["grants"]) for out in outs)
    calls = sum(int(out["redis_calls"]) for out in outs)
    margins = [out["margin"] for out in outs if out["margin"] is not None]
    late = start_at + WARM_UP_S
    return Row(
        strategy=strategy, processes=processes, concurrency=concurrency, jitter_ms=jitter_ms,
        seconds=seconds, accepted=stats["accepted"], rejected_429=stats["rejected_429"],
        late_429=sum(1 for t, s in sends if s == 429 and t >= late),
        max_accepted_1s=stats["max_in_any_second"], accepted_rps=float(stats["accepted_rps"] or 0.0),
        max_sent_1s=max_in_window([t for t, _ in sends], 1.0),
        max_sent_100ms=max_in_window([t for t, _ in sends], 0.1),
        redis_per_grant=calls / grants if calls and grants else None,
        cpu_pct=100 * sum(float(out["cpu_s"]) for out in outs) / seconds,
        margin=max(margins) if margins else None, sends=sends,
        given_up=sum(int(out["given_up"]) for out in outs) if margins else None,
    )  # fmt: skip


def table(rows: list[Row]) -> str:
    head = (
        "| strategy | K x C | jitter ms | accepted rps | utilisation | max accepted in any 1 s "
        "| max sent in any 1 s | max sent in any 100 ms | 429s | 429s after 5 s | Redis calls/grant "
        f"| CPU % | margin at end | slots given up |\n|{'---|' * 14}"
    )
    lines = [
        f"| {r.strategy} | {r.processes} x {r.concurrency} | {r.jitter_ms:g} | {r.accepted_rps:.2f} "
        f"| {r.utilisation:.3f} | {r.max_accepted_1s} | {r.max_sent_1s} | {r.max_sent_100ms} "
        f"| {r.rejected_429} | {r.late_429} "
        f"| {'-' if r.redis_per_grant is None else f'{r.redis_per_grant:.2f}'} | {r.cpu_pct:.0f} "
        f"| {'-' if r.margin is None else f'{r.margin:.2%}'} "
        f"| {'-' if r.given_up is None else r.given_up} |"
        for r in rows
    ]
    return "\n".join([head, *lines])


def plot(rows: list[Row], path: str) -> None:
    """Requests sent per sliding second, one panel per (K x C, jitter), against the limit line."""
    groups: dict[tuple[int, int, float], list[Row]] = {}
    for row in rows:
        groups.setdefault((row.processes, row.concurrency, row.jitter_ms), []).append(row)
    panels = [
        Panel(
            title=f"{k} processes x {c} tasks, arrival jitter 0-{jitter:g} ms",
            series=[sliding_second_series(row.strategy, [t for t, _ in row.sends]) for row in group],
            xlabel="seconds since the first request",
            ylabel="sent in the preceding second",
            limit=LIMIT,
            limit_label=f"limit {LIMIT}/s",
            ymax=LIMIT * 2,
        )
        for (k, c, jitter), group in groups.items()
    ]
    draw(panels, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench peers", description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--scenarios", default="1x16,4x16,8x8", help="KxC,KxC,...")
    parser.add_argument("--jitter-ms", default="0,20,50", help="arrival jitter levels, comma-separated")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--micro-seconds", type=float, default=5.0, help="0 skips the micro-benchmark")
    parser.add_argument("--plot", metavar="FILE.png")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.strategies.split(",")) - set(STRATEGIES))
    if unknown:
        parser.error(f"unknown strategy {', '.join(unknown)}; choose from {', '.join(STRATEGIES)}")
    api_key = secrets.token_hex(16)
    sim_port = svc.free_port()
    rows: list[Row] = []
    with svc.redis_available(args.redis_url):
        sim = svc.start_simulator(sim_port, extra=["--api-key", api_key])
        try:
            for jitter in (float(j) for j in args.jitter_ms.split(",")):
                for scenario in args.scenarios.split(","):
                    processes, concurrency = (int(x) for x in scenario.lower().split("x"))
                    for strategy in args.strategies.split(","):
                        row = run_row(
                            strategy, processes, concurrency, jitter, args.seconds,
                            sim_port=sim_port, api_key=api_key, redis_url=args.redis_url,
                        )  # fmt: skip
                        rows.append(row)
                        print(f"done: {strategy} {scenario} J={jitter:g}", file=sys.stderr, flush=True)
        finally:
            svc.stop(sim)
        print(table(rows))
        if args.micro_seconds > 0:
            print(asyncio.run(micro_benchmark(args.redis_url, args.micro_seconds)))
    if args.plot:
        plot(rows, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0
