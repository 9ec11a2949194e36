"""A granted request stays close to its slot: a reply read late does not move the slot, and a task
that wakes too late gives the slot up rather than send into the next one's second."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from worker import keys
from worker.limiter import RateLimiter
from worker.limiter_clock import ClockOffset, LateSlots
from worker.limiter_margin import PENDING_GRANT
from worker.metrics import Metrics

KEY = "l" * 32
RATES = {"collect": 2.0, "search": 2.0, "bulk": 2.0}  # slots 0.5 s apart


class SlowReplies(aioredis.Redis):
    """The real client; the limiter's script replies can be held back before the caller sees them,
    as a busy event loop or an unscheduled process holds them."""

    hold_s = 0.0

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        result = await super().execute_command(*args, **options)
        if args and args[0] in ("EVALSHA", "EVAL") and self.hold_s:
            await asyncio.sleep(self.hold_s)
        return result


async def idle_bucket(url: str) -> SlowReplies:
    client = SlowReplies.from_url(url)
    await client.set(keys.limiter_tat_key(KEY, "collect"), "1", px=3_600_000)  # known and idle
    return client


def due_of_last_grant() -> float:
    pending = PENDING_GRANT.get()
    assert pending is not None
    return pending.due_s


@pytest.mark.slow
async def test_a_reply_read_late_does_not_make_its_slot_late(clean_redis: str) -> None:
    client = await idle_bucket(clean_redis)
    try:
        limiter = RateLimiter(client, KEY, RATES, safety_margin=0.0)  # type: ignore[arg-type]
        first = await limiter.acquire("collect")
        first_due = due_of_last_grant()
        client.hold_s = 0.015  # the next booking's reply reaches the task 15 ms after Redis sent it
        second = await limiter.acquire("collect")
    finally:
        await client.aclose()
    assert second.slot_us - first.slot_us == 500_000
    # Mapped to local time by the reply that came back at once (the first), not by the one held
    # back: the slot is where Redis put it, 0.5 s after the first, not 15 ms later than that.
    assert due_of_last_grant() - (first_due + 0.5) <= 0.002


async def gap_after_a_stall_over_the_second_slot(limiter: RateLimiter) -> int:
    """Two grants, the process stalled over the second slot (0.5 s on) so the task wakes 50-100 ms
    after it; the microseconds between the two slots granted."""
    first = await limiter.acquire("collect")
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + (due_of_last_grant() + 0.45 - time.monotonic()), time.sleep, 0.15)
    second = await limiter.acquire("collect")
    return second.slot_us - first.slot_us


@pytest.mark.slow
async def test_a_task_that_wakes_too_late_gives_its_slot_up_and_books_again(clean_redis: str) -> None:
    client = await idle_bucket(clean_redis)
    metrics = Metrics()
    limiter = RateLimiter(client, KEY, RATES, safety_margin=0.0, observer=metrics)  # type: ignore[arg-type]
    try:
        gap_us = await gap_after_a_stall_over_the_second_slot(limiter)
    finally:
        await client.aclose()
    assert gap_us == 1_000_000  # the late slot went unused: the next one
    assert limiter.slots_given_up("collect") == 1
    given_up = metrics.registry.get_sample_value(
        "employee_sync_limiter_slots_given_up_total", {"endpoint_class": "collect"}
    )
    grants = metrics.registry.get_sample_value(
        "employee_sync_limiter_grants_total", {"endpoint_class": "collect"}
    )
    assert (given_up, grants) == (1.0, 2.0)  # two slots used, one left unused


@pytest.mark.slow
async def test_without_the_guard_the_late_task_sends_in_its_slot(clean_redis: str) -> None:
    client = await idle_bucket(clean_redis)
    limiter = RateLimiter(client, KEY, RATES, safety_margin=0.0, late_limit_s=None)  # type: ignore[arg-type]
    try:
        assert await gap_after_a_stall_over_the_second_slot(limiter) == 500_000
    finally:
        await client.aclose()
    assert limiter.slots_given_up("collect") == 0


def test_the_clock_offset_is_the_least_delayed_reply_s() -> None:
    clock = ClockOffset()
    clock.note(100.000, 50_000_000)  # offset 50.000 s
    clock.note(100.215, 50_200_000)  # read 15 ms late: offset 50.015 s
    assert clock.local_s(51_000_000) == pytest.approx(101.000)


def test_the_clock_offset_forgets_replies_older_than_its_window() -> None:
    clock = ClockOffset(window_s=1.0)
    clock.note(100.000, 50_000_000)
    clock.note(100.500, 50_499_000)  # 1 ms later than the first
    clock.note(101.200, 51_199_000)  # the first is now over a second old: 1 ms it is
    assert clock.local_s(52_000_000) == pytest.approx(102.001)


def test_a_server_clock_that_jumps_back_is_followed_at_once() -> None:
    # A failover to a server whose clock is 0.5 s behind: not a delay, start again from it.
    clock = ClockOffset(jump_s=0.02)
    clock.note(100.000, 50_000_000)
    clock.note(100.100, 49_600_000)
    assert clock.local_s(50_000_000) == pytest.approx(100.500)


def test_late_slots_gives_up_only_what_is_too_late() -> None:
    late = LateSlots(limit_s=0.005)
    assert not late.gives_up(0.004)
    assert late.gives_up(0.006)
    assert late.given_up == 1


def test_the_wider_the_margin_the_later_a_task_may_wake() -> None:
    # 20 ms of spread: a send 8 ms late needs a partner 12 ms early for a 429; keep it.
    late = LateSlots(limit_s=0.005)
    assert not late.gives_up(0.008, spread_s=0.020)
    assert late.gives_up(0.010, spread_s=0.020)


def test_a_host_that_is_always_late_gives_up_at_most_its_budget() -> None:
    late = LateSlots(limit_s=0.005, budget=0.005)
    given_up = sum(late.gives_up(0.050) for _ in range(10_000))
    assert given_up <= 1 + 0.005 * 10_000  # the one it started with, then 1 in 200
    assert given_up >= 0.005 * 10_000 - 1  # and it does use its budget
