"""Credits: only a 200 is billed; the balance is on every authenticated response."""

from __future__ import annotations

import asyncio

from multidict import CIMultiDictProxy
from sim_support import MakeSim, Sim


def balance(headers: CIMultiDictProxy[str]) -> int:
    return int(headers["x-credits-remaining"])


async def test_only_200s_are_billed_and_402_at_zero(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=2)
    statuses_and_balances = []
    for key in (10_000, 10_001, 10_007, 10_014):
        reply = await sim.collect(key)
        statuses_and_balances.append((reply.status, balance(reply.headers)))
    assert statuses_and_balances == [(200, 1), (404, 1), (200, 0), (402, 0)]
    assert (await sim.collect(10_014)).json() == {"detail": "Insufficient credits"}
    stats = await sim.stats()
    assert (stats["credits_remaining"], stats["credits_charged"]) == (0, 2)


async def test_unknown_keys_are_402_too_once_credits_run_out(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=0)
    assert (await sim.collect(10_001)).status == 402


async def test_cost_per_collect_is_configurable(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=15, collect_cost=10)
    first, second = await sim.collect(10_000), await sim.collect(10_000)
    assert (first.status, balance(first.headers)) == (200, 5)
    assert (second.status, balance(second.headers)) == (402, 5)


async def test_unlimited_credits_still_send_a_numeric_balance(sim: Sim) -> None:
    reply = await sim.collect(10_000)
    assert balance(reply.headers) == 1_000_000_000
    stats = await sim.stats()
    assert (stats["credits_remaining"], stats["credits_charged"]) == (None, 1)


async def test_429_is_not_billed(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=10, collect_rps=1)
    sim.state.clock = lambda: 100.0  # every request arrives in the same instant
    first, second = await sim.collect(10_000), await sim.collect(10_000)
    assert (first.status, balance(first.headers)) == (200, 9)
    assert (second.status, balance(second.headers)) == (429, 9)


async def test_last_credit_is_billed_once_under_concurrency(make_sim: MakeSim) -> None:
    # Latency puts both requests past the 402 check before either is billed.
    sim = await make_sim(credits=1, latency_ms_min=50, latency_ms_max=50)
    replies = await asyncio.gather(sim.collect(10_000), sim.collect(10_007))
    assert sorted(reply.status for reply in replies) == [200, 402]
    assert sim.state.credits == 0
