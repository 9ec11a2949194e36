"""Arrival jitter: the network's random delay, applied before the rate window counts a request."""

from __future__ import annotations

import asyncio
import random

from sim_support import MakeSim

from simulator.config import SimulatorConfig
from simulator.state import fault_seed


async def test_a_request_is_counted_after_its_jitter_delay(make_sim: MakeSim) -> None:
    sim = await make_sim(arrival_jitter_ms=200)
    loop = asyncio.get_running_loop()
    sim.state.clock = loop.time  # the window's clock, readable here
    # The delay is the first draw of the seeded fault stream, so this test knows it in advance.
    delay_s = random.Random(fault_seed(SimulatorConfig())).uniform(0.0, 200) / 1000
    assert delay_s > 0.01
    sent_at = loop.time()
    assert (await sim.collect(10_000)).status == 200
    counted_at = (await sim.stats())["classes"]["collect"]["first_accepted_s"]
    assert counted_at >= sent_at + delay_s


async def test_without_jitter_a_request_is_counted_when_it_arrives(make_sim: MakeSim) -> None:
    sim = await make_sim()
    loop = asyncio.get_running_loop()
    sim.state.clock = loop.time
    sent_at = loop.time()
    assert (await sim.collect(10_000)).status == 200
    received_at = loop.time()
    counted_at = (await sim.stats())["classes"]["collect"]["first_accepted_s"]
    assert sent_at <= counted_at <= received_at


async def test_jitter_is_a_live_setting(make_sim: MakeSim) -> None:
    sim = await make_sim()
    assert (await sim.admin("PATCH", "/config", {"arrival_jitter_ms": 20})).status == 200
    assert sim.state.config.arrival_jitter_ms == 20
    assert (await sim.admin("PATCH", "/config", {"arrival_jitter_ms": -1})).status == 400
