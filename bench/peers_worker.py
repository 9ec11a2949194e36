"""One process of the peer comparison: C concurrent loops of (strategy's permit -> API call) for T s.

Strategies (`--strategy`):
- `ours` (`--margin-mode adaptive|fixed`, `--margin`): this project's `worker.limiter.RateLimiter`
  with the client's response hook, and a fleet-wide cool-down (`penalize`) on a 429;
- `aiolimiter`: one `aiolimiter.AsyncLimiter(limit, 1)` per process (no coordination);
- `aiolimiter-split`: the same with limit / processes each (a static split);
- `limits`: the `limits` library's moving window on Redis (redis-py asyncio), polling on refusal;
- `pyrate`: `pyrate-limiter`'s `RedisBucket` (a sliding log in a sorted set), blocking acquire.
Peers have no cool-down mechanism, so they just go on after a 429, as their users' code would.

Prints one JSON line: statuses, sends (wall time, status), Redis round trips, grants, CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from bench.fleet_start import ready_then_start
from worker.client import COLLECT_PATH, CoresignalClient
from worker.errors import EmployeeSyncError
from worker.limiter import RateLimiter
from worker.limiter_margin import AdaptiveMargin
from worker.runtime import settle_heap

Permit = Callable[[], Awaitable[None]]
ROUND_TRIPS = Counter[str]()


class CountingConnection(aioredis.Connection):
    """Counts round trips to Redis (a pipeline is one), for "Redis calls per grant"."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        ROUND_TRIPS["redis"] += 1
        await super().send_packed_command(command, check_health)


def counting_redis(url: str) -> aioredis.Redis:
    pool = aioredis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    return aioredis.Redis(connection_pool=pool)


async def ours(args: argparse.Namespace, client_box: list[RateLimiter]) -> Permit:
    adaptive = AdaptiveMargin() if args.margin_mode == "adaptive" else None
    limiter = RateLimiter(
        counting_redis(args.redis_url), args.api_key, {"collect": float(args.limit)},
        safety_margin=args.margin, margin=adaptive, acquire_timeout_s=60,
    )  # fmt: skip
    client_box.append(limiter)

    async def permit() -> None:
        await limiter.acquire("collect")

    return permit


async def aiolimiter_permit(args: argparse.Namespace, split: bool) -> Permit:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(args.limit / args.processes if split else args.limit, 1)

    async def permit() -> None:
        await limiter.acquire()

    return permit


async def limits_permit(args: argparse.Namespace) -> Permit:
    from limits import RateLimitItemPerSecond
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    storage = RedisStorage(
        "async+" + args.redis_url, implementation="redispy",
        connection_class=CountingConnection,  # type: ignore[arg-type]
    )  # fmt: skip
    limiter = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(args.limit)
    rng = random.Random()

    async def permit() -> None:
        while not await limiter.hit(item, args.api_key):
            stats = await limiter.get_window_stats(item, args.api_key)
            await asyncio.sleep(max(0.001, stats.reset_time - time.time()) + rng.uniform(0, 0.005))

    return permit


async def pyrate_permit(args: argparse.Namespace) -> Permit:
    from pyrate_limiter import Duration, Limiter, Rate, RedisBucket

    redis = counting_redis(args.redis_url)
    bucket = await RedisBucket.init([Rate(args.limit, Duration.SECOND)], redis, "bench-pyrate")
    limiter = Limiter(bucket)

    async def permit() -> None:
        await limiter.try_acquire_async("collect", blocking=True)

    return permit


async def make_permit(args: argparse.Namespace, ours_box: list[RateLimiter]) -> Permit:
    if args.strategy == "ours":
        return await ours(args, ours_box)
    if args.strategy in ("aiolimiter", "aiolimiter-split"):
        return await aiolimiter_permit(args, split=args.strategy == "aiolimiter-split")
    if args.strategy == "limits":
        return await limits_permit(args)
    if args.strategy == "pyrate":
        return await pyrate_permit(args)
    raise SystemExit(f"unknown strategy {args.strategy!r}")


async def _loop(
    permit: Permit,
    client: CoresignalClient,
    limiter: RateLimiter | None,
    deadline: float,
    sends: list[tuple[float, int]],
    employee_id: int,
) -> None:
    while time.monotonic() < deadline:
        await permit()
        ROUND_TRIPS["grants"] += 1
        if time.monotonic() >= deadline:
            return
        sent_at = time.time()
        try:
            response = await client.request("GET", f"{COLLECT_PATH}{employee_id}")
        except EmployeeSyncError:
            sends.append((sent_at, 0))
            continue
        sends.append((sent_at, response.status))
        if response.status == 429 and limiter is not None:
            await limiter.penalize("collect", 1.0)


async def run(args: argparse.Namespace) -> dict[str, object]:
    ours_box: list[RateLimiter] = []
    permit = await make_permit(args, ours_box)
    limiter = ours_box[0] if ours_box else None
    client = CoresignalClient.open(
        args.base_url, args.api_key, timeout_s=10, limit=args.concurrency, observer=limiter
    )
    sends: list[tuple[float, int]] = []
    await client.warm_up(args.concurrency)
    settle_heap()  # as `employee-sync worker` does before it starts
    start_at = await ready_then_start()
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    ROUND_TRIPS.clear()
    deadline = time.monotonic() + args.seconds
    try:
        loops = [
            _loop(permit, client, limiter, deadline, sends, 10_000 + 7 * i) for i in range(args.concurrency)
        ]
        await asyncio.gather(*loops)
    finally:
        await client.close()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    margin = limiter.margin("collect") if limiter is not None else None
    given_up = limiter.slots_given_up("collect") if limiter is not None else 0
    return {
        "sends": sends,
        "grants": ROUND_TRIPS["grants"],
        "redis_calls": ROUND_TRIPS["redis"],
        "cpu_s": cpu_s,
        "margin": margin,
        "given_up": given_up,
        "start_at": start_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--margin-mode", default="adaptive", choices=["adaptive", "fixed"])
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--limit", type=int, default=54)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
