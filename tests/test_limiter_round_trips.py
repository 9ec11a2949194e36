"""One Redis round trip per grant in the common case, without giving up the cool-down guarantee."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from worker import keys
from worker.limiter import RateLimiter
from worker.limiter_margin import PENDING_GRANT

KEY = "r" * 32


class CountingRedis(aioredis.Redis):
    """The real client, counting the round trips it makes (a pipeline counts once)."""

    round_trips = 0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return await super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        self.round_trips += 1
        return super().pipeline(transaction, shard_hint)


@pytest.fixture
async def counting(clean_redis: str) -> AsyncIterator[CountingRedis]:
    client = CountingRedis.from_url(clean_redis)
    for cls in keys.ENDPOINT_CLASSES:  # a known, idle bucket (see tests/test_limiter.py)
        await client.set(keys.limiter_tat_key(KEY, cls), "1", px=3_600_000)
    await client.script_flush()  # nothing cached: the first call below pays for loading the script
    yield client
    await client.aclose()


def limiter(client: aioredis.Redis, rate: float) -> RateLimiter:
    # These tests count round trips and slots: a slot given up for waking late (a loaded machine)
    # books again, one round trip more (tests/test_limiter_lateness.py), so that is switched off.
    rates = {"collect": rate, "search": rate, "bulk": rate}
    return RateLimiter(client, KEY, rates, safety_margin=0.0, late_limit_s=None)  # type: ignore[arg-type]


async def test_a_free_slot_costs_one_round_trip(counting: CountingRedis) -> None:
    fast = limiter(counting, 100_000)
    await fast.acquire("collect")  # EVALSHA, NOSCRIPT, EVAL: the script is loaded once
    counting.round_trips = 0
    for _ in range(50):
        await fast.acquire("collect")
    assert counting.round_trips == 50


async def test_a_long_wait_looks_at_the_cool_down_once_before_firing(counting: CountingRedis) -> None:
    slow = limiter(counting, 20)
    await slow.acquire("collect")
    counting.round_trips = 0
    await slow.acquire("collect")  # ~50 ms away: a 429 could have been recorded meanwhile
    assert counting.round_trips == 2


async def test_concurrent_callers_are_booked_together_and_share_a_fresh_view(counting: CountingRedis) -> None:
    # 200 callers at once: booked in batches of at most 64, one call each; their slots are 1 ms apart
    # and most wake within 2 ms of some other caller's cool-down look-up.
    busy = limiter(counting, 1000)
    await busy.acquire("collect")
    counting.round_trips = 0
    grants = await asyncio.gather(*(busy.acquire("collect") for _ in range(200)))
    assert len({g.slot_us for g in grants}) == 200
    assert counting.round_trips < 200


@pytest.mark.slow
async def test_a_batch_books_only_what_fits_the_horizon(counting: CountingRedis) -> None:
    # 10 rps with a 0.3 s horizon: of 10 callers at once, 4 are booked at once (0, 0.1, 0.2, 0.3 s);
    # the rest are refused, wait for the queue to drain and come back, still one slot each.
    rates = {"collect": 10.0, "search": 10.0, "bulk": 10.0}
    slow = RateLimiter(counting, KEY, rates, safety_margin=0.0, max_ahead_s=0.3, late_limit_s=None)  # type: ignore[arg-type]
    grants = await asyncio.gather(*(slow.acquire("collect") for _ in range(10)))
    slots = sorted(g.slot_us for g in grants)
    assert [b - a for a, b in itertools.pairwise(slots)] == [100_000] * 9


@pytest.mark.slow
async def test_a_slot_booked_before_a_429_elsewhere_never_fires_inside_the_cool_down(
    counting: CountingRedis,
) -> None:
    worker_a, worker_b = limiter(counting, 5), limiter(counting, 5)
    await worker_a.acquire("collect")
    pending = [asyncio.create_task(worker_a.acquire("collect")) for _ in range(3)]  # 0.2-0.6 s away
    tat_key = keys.limiter_tat_key(KEY, "collect")
    first = int(await counting.get(tat_key) or 0)
    deadline = asyncio.get_running_loop().time() + 5
    while int(await counting.get(tat_key) or 0) < first + 3 * 200_000:
        assert asyncio.get_running_loop().time() < deadline, "the three slots were never booked"
        await asyncio.sleep(0.005)
    await worker_b.penalize("collect", 0.8)  # another process's 429: worker_a has not seen it
    grants = await asyncio.gather(*pending)
    cooldown = int(await counting.get(keys.limiter_cooldown_key(KEY, "collect")) or 0)
    assert cooldown > 0 and all(g.slot_us >= cooldown for g in grants)


@pytest.mark.slow
async def test_a_429_seen_by_this_process_is_honoured_without_asking_redis(counting: CountingRedis) -> None:
    worker = limiter(counting, 5)
    await worker.acquire("collect")
    pending = asyncio.create_task(worker.acquire("collect"))
    await asyncio.sleep(0.05)
    await worker.penalize("collect", 0.4)
    grant = await pending
    cooldown = int(await counting.get(keys.limiter_cooldown_key(KEY, "collect")) or 0)
    assert grant.slot_us >= cooldown > 0


class TimedRedis(CountingRedis):
    """Also notes when each cool-down look-up (the one pipeline the limiter sends) starts."""

    lookups_at: list[float] = []

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        self.lookups_at.append(time.monotonic())
        return super().pipeline(transaction, shard_hint)


async def test_the_look_up_before_a_long_wait_s_slot_is_made_ahead_of_it_not_after(clean_redis: str) -> None:
    # Its round trip would otherwise lie between the slot and the request: lateness every margin
    # must absorb. recheck_s 0.2 s here (2 ms in production) so the test does not depend on timing.
    client = TimedRedis.from_url(clean_redis)
    client.lookups_at = []
    await client.set(keys.limiter_tat_key(KEY, "collect"), "1", px=3_600_000)
    rates = {"collect": 2.0, "search": 2.0, "bulk": 2.0}
    slow = RateLimiter(client, KEY, rates, safety_margin=0.0, recheck_s=0.2, late_limit_s=None)  # type: ignore[arg-type]
    try:
        await slow.acquire("collect")
        await slow.acquire("collect")  # 0.5 s away
        pending = PENDING_GRANT.get()
        returned_at = time.monotonic()
    finally:
        await client.aclose()
    assert pending is not None and len(client.lookups_at) == 1
    assert client.lookups_at[0] <= pending.due_s - 0.05  # looked up ~0.1 s before the slot
    assert returned_at >= pending.due_s  # and still granted no earlier than the slot
