"""The per-key limit as a client sees it: 429s, headers and the stats that prove them."""

from __future__ import annotations

import asyncio

from sim_support import API_KEY, MakeSim

from simulator.state import key_fingerprint


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_gets_exactly_the_limit_through(make_sim: MakeSim) -> None:
    sim = await make_sim(collect_rps=5)
    replies = await asyncio.gather(*(sim.collect(10_000) for _ in range(12)))
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200] * 5 + [429] * 7
    rejected = next(reply for reply in replies if reply.status == 429)
    assert rejected.json() == {"detail": "Too many requests"}
    assert "Retry-After" not in rejected.headers
    assert rejected.headers["x-ratelimit-remaining-second"] == "0"
    assert rejected.headers["x-ratelimit-limit-second"] == "5"

    stats = await sim.stats()
    expected = {"accepted": 5, "rejected_429": 7, "max_in_any_second": 5}
    collect = stats["classes"]["collect"]
    assert {k: collect[k] for k in expected} == expected and collect["limit_rps"] == 5
    per_key = stats["keys"][key_fingerprint(API_KEY)]["collect"]
    assert {k: per_key[k] for k in expected} == expected
    assert collect["first_accepted_s"] <= collect["last_accepted_s"]
    assert stats["status_counts"] == {"200": 5, "429": 7}
    assert stats["requests_total"] == 12


async def test_the_window_slides(make_sim: MakeSim) -> None:
    sim = await make_sim(collect_rps=2)
    clock = FakeClock()
    sim.state.clock = clock
    assert [(await sim.collect(10_000)).status for _ in range(3)] == [200, 200, 429]
    clock.now += 0.5
    assert (await sim.collect(10_000)).status == 429
    clock.now += 0.5  # the first two now lie exactly one second back: out of the window
    remaining = [(await sim.collect(10_000)).headers["x-ratelimit-remaining-second"]]
    remaining.append((await sim.collect(10_000)).headers["x-ratelimit-remaining-second"])
    assert remaining == ["1", "0"]
    assert (await sim.collect(10_000)).status == 429
    collect = (await sim.stats())["classes"]["collect"]
    assert (collect["accepted"], collect["rejected_429"], collect["max_in_any_second"]) == (4, 3, 2)


async def test_retry_after_when_configured(make_sim: MakeSim) -> None:
    sim = await make_sim(collect_rps=1, retry_after_s=1.0)
    sim.state.clock = FakeClock()
    await sim.collect(10_000)
    assert (await sim.collect(10_000)).headers["Retry-After"] == "1"
    sim.state.config.retry_after_s = 0.5
    assert (await sim.collect(10_000)).headers["Retry-After"] == "0.5"


async def test_404s_use_up_the_limit_too(make_sim: MakeSim) -> None:
    sim = await make_sim(collect_rps=1)
    sim.state.clock = FakeClock()
    assert (await sim.collect(10_001)).status == 404
    assert (await sim.collect(10_000)).status == 429


async def test_each_key_has_its_own_budget(make_sim: MakeSim) -> None:
    keys = ["a" * 32, "b" * 32]
    sim = await make_sim(collect_rps=1, api_keys=keys)
    sim.state.clock = FakeClock()
    assert [(await sim.collect(10_000, api_key=key)).status for key in keys] == [200, 200]
    assert (await sim.collect(10_000, api_key=keys[0])).status == 429
    stats = await sim.stats()
    assert set(stats["keys"]) == {key_fingerprint(key) for key in keys}
    assert stats["classes"]["collect"]["accepted"] == 2
    assert keys[0] not in str(stats)
