"""Injected faults: what a client sees, and that none of them costs a credit."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from sim_support import MakeSim, Sim


async def assert_nothing_billed(sim: Sim) -> None:
    stats = await sim.stats()
    assert (stats["credits_remaining"], stats["credits_charged"]) == (10, 0)


async def test_5xx(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=10, error_rate_5xx=1.0)
    reply = await sim.collect(10_000)
    assert (reply.status, reply.json()) == (503, {"detail": "Service temporarily unavailable"})
    assert reply.headers["x-credits-remaining"] == "10"
    await assert_nothing_billed(sim)


async def test_faulted_requests_still_count_against_the_limit(make_sim: MakeSim) -> None:
    sim = await make_sim(error_rate_5xx=1.0, collect_rps=1)
    sim.state.clock = lambda: 5.0
    assert [(await sim.collect(10_000)).status for _ in range(2)] == [503, 429]
    assert (await sim.stats())["classes"]["collect"]["accepted"] == 1


async def test_malformed_body_is_not_json(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=10, malformed_rate=1.0)
    reply = await sim.collect(10_000)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)
    await assert_nothing_billed(sim)


async def test_slow_response_trips_a_client_timeout(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=10, slow_rate=1.0, slow_s=5.0)
    started = time.monotonic()
    with pytest.raises(asyncio.TimeoutError):
        await sim.collect(10_000, timeout=0.2)
    assert time.monotonic() - started < 2.0
    await assert_nothing_billed(sim)


async def test_a_patient_client_gets_504_from_a_slow_response(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=10, slow_rate=1.0, slow_s=0.2)
    started = time.monotonic()
    reply = await sim.collect(10_000)
    assert time.monotonic() - started >= 0.2
    assert (reply.status, reply.json()) == (504, {"detail": "Gateway timeout"})
    await assert_nothing_billed(sim)


async def test_connection_reset_is_a_client_error(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=10, reset_rate=1.0)
    with pytest.raises(aiohttp.ClientError):
        await sim.collect(10_000)
    stats = await sim.stats()
    assert stats["status_counts"]["reset"] >= 1
    assert set(stats["status_counts"]) == {"reset"}
    await assert_nothing_billed(sim)


async def test_latency_is_added_after_admission(make_sim: MakeSim) -> None:
    sim = await make_sim(latency_ms_min=150, latency_ms_max=200)
    started = time.monotonic()
    assert (await sim.collect(10_000)).status == 200
    assert time.monotonic() - started >= 0.15


async def test_fault_draws_are_reproducible_from_the_seed(make_sim: MakeSim) -> None:
    async def statuses(sim: Sim) -> list[int]:
        return [(await sim.collect(10_000)).status for _ in range(30)]

    first = await statuses(await make_sim(error_rate_5xx=0.3, malformed_rate=0.2))
    second = await statuses(await make_sim(error_rate_5xx=0.3, malformed_rate=0.2))
    assert first == second
    assert first.count(503) > 0
    assert first.count(200) > 0
    other_seed = await statuses(await make_sim(error_rate_5xx=0.3, malformed_rate=0.2, seed=7))
    assert other_seed != first


async def test_reset_replays_the_same_faults(make_sim: MakeSim) -> None:
    sim = await make_sim(error_rate_5xx=0.5)
    sim.state.clock = iter(range(1_000)).__next__  # one request per second: never a 429
    before = [(await sim.collect(10_000)).status for _ in range(20)]
    await sim.admin("POST", "/reset")
    assert [(await sim.collect(10_000)).status for _ in range(20)] == before
