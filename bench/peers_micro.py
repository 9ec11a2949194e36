"""Grants per second from one process with 16 tasks: our limiter, and `limits` for reference.

The rate is set far above what either can grant, so every grant is a free slot and the figure is
the cost of a grant itself (Redis round trips and CPU), not the rate limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.peers_worker import ROUND_TRIPS, CountingConnection, counting_redis
from worker import keys
from worker.limiter import RateLimiter
from worker.limiter_margin import AdaptiveMargin

TASKS = 16
KEY = "micro-benchmark-key-000000000000"


async def _grants_per_s(grant: Callable[[], Awaitable[object]], seconds: float) -> tuple[float, float]:
    """(grants per second, Redis round trips per grant) of TASKS loops calling `grant`."""
    await grant()  # load scripts, open connections
    ROUND_TRIPS.clear()
    deadline = time.monotonic() + seconds
    count = 0

    async def loop() -> None:
        nonlocal count
        while time.monotonic() < deadline:
            await grant()
            count += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(TASKS)))
    elapsed = time.monotonic() - started
    return count / elapsed, ROUND_TRIPS["redis"] / max(1, count)


def _acquirer(limiter: RateLimiter) -> Callable[[], Awaitable[object]]:
    async def grant() -> object:
        return await limiter.acquire("collect")

    return grant


async def micro_benchmark(redis_url: str, seconds: float) -> str:
    from limits import RateLimitItemPerSecond
    from limits.aio.storage import RedisStorage
    from limits.aio.strategies import MovingWindowRateLimiter

    client = counting_redis(redis_url)
    await client.flushdb()
    await client.set(keys.limiter_tat_key(KEY, "collect"), "1", px=3_600_000)
    rows = []
    for name, margin in (("ours, adaptive margin", AdaptiveMargin()), ("ours, fixed margin", None)):
        limiter = RateLimiter(client, KEY, {"collect": 1_000_000.0}, margin=margin)
        rate, calls = await _grants_per_s(_acquirer(limiter), seconds)
        rows.append((name, rate, calls))
    storage = RedisStorage(
        "async+" + redis_url, implementation="redispy",
        connection_class=CountingConnection,  # type: ignore[arg-type]
    )  # fmt: skip
    moving = MovingWindowRateLimiter(storage)
    item = RateLimitItemPerSecond(10_000_000)
    rate, calls = await _grants_per_s(lambda: moving.hit(item, KEY), seconds)
    rows.append(("limits moving window (hit)", rate, calls))
    await client.flushdb()
    await client.aclose()
    title = f"grants/s micro-benchmark (1 process, {TASKS} tasks, {seconds:g} s)"
    head = f"| {title} | grants/s | Redis calls/grant |"
    lines = [f"| {name} | {rate:,.0f} | {calls:.2f} |" for name, rate, calls in rows]
    return "\n".join([head, "|---|---|---|", *lines])
