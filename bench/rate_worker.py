"""One benchmark process: C concurrent loops of (limiter slot → API call) for T seconds.

The same limiter and client the fleet uses, without MongoDB, so the table measures the rate
limiter against the simulator and nothing else. Prints one JSON line: its counts by status and the
wall time of every request it sent (for `bench rate --plot`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

import redis.asyncio as aioredis

from bench.fleet_start import ready_then_start
from worker.client import CoresignalClient
from worker.errors import EmployeeSyncError, RateLimitedError
from worker.keys import EndpointClass
from worker.limiter import RateLimiter
from worker.runtime import settle_heap

SEARCH_BODY = {"query": {"match_all": {}}, "sort": ["id"]}


async def _one_call(client: CoresignalClient, endpoint_class: EndpointClass, employee_id: int) -> int:
    if endpoint_class == "search":
        response = await client.request(
            "POST", "/v2/employee_clean/search/es_dsl", json_body=SEARCH_BODY, params={"items_per_page": "10"}
        )
        return response.status
    await client.collect(str(employee_id))
    return 200


async def _loop(
    limiter: RateLimiter,
    client: CoresignalClient,
    endpoint_class: EndpointClass,
    deadline: float,
    counts: Counter[str],
    sent: list[float],
    employee_id: int,
) -> None:
    while time.monotonic() < deadline:
        await limiter.acquire(endpoint_class)
        if time.monotonic() >= deadline:
            return
        sent.append(time.time())  # wall clock: the processes' times are compared with each other
        try:
            counts[str(await _one_call(client, endpoint_class, employee_id))] += 1
        except RateLimitedError as exc:
            counts["429"] += 1
            await limiter.penalize(endpoint_class, exc.retry_after_s or 1.0)
        except EmployeeSyncError as exc:
            counts[type(exc).__name__] += 1


async def run(args: argparse.Namespace) -> dict[str, object]:
    redis = aioredis.Redis.from_url(args.redis_url)
    endpoint_class: EndpointClass = args.endpoint_class
    limiter = RateLimiter(
        redis, args.api_key, {endpoint_class: args.rps}, safety_margin=args.margin, acquire_timeout_s=60
    )
    client = CoresignalClient.open(args.base_url, args.api_key, timeout_s=10, limit=args.concurrency)
    counts: Counter[str] = Counter()
    sent: list[float] = []
    await client.warm_up(args.concurrency)
    settle_heap()  # as `employee-sync worker` does before it starts
    await ready_then_start()  # every process competes for the same seconds
    deadline = time.monotonic() + args.seconds
    try:
        await asyncio.gather(
            *(
                _loop(limiter, client, endpoint_class, deadline, counts, sent, 10_000 + 7 * i)
                for i in range(args.concurrency)
            )
        )
    finally:
        await client.close()
        await redis.aclose()
    return {"counts": dict(counts), "sent": sent}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--endpoint-class", default="collect", choices=["collect", "search"])
    parser.add_argument("--rps", type=float, required=True)
    parser.add_argument("--margin", type=float, default=0.03)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10)
    print(json.dumps(asyncio.run(run(parser.parse_args()))), flush=True)


if __name__ == "__main__":
    main()
