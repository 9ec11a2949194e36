"""Run control and the feeder: a bounded queue window, fair sharing, pause/resume/cancel, listing, ETA."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest

from cli.wiring import PERIODIC_JOBS, run_fleet_worker
from config import Settings
from jobs.control import cancel_run, pause_run, resume_run
from jobs.runs import RunState, get_status, list_runs
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import MakeSimulator, enqueue_ids, opened_services, population_ids, with_overrides
from worker import keys
from worker.errors import RunNotFoundError, RunStateError
from worker.runtime import Services

WINDOW = 30


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=1000)


@pytest.fixture
def small_window(settings: Settings, simulator: RunningSimulator) -> Settings:
    return with_overrides(
        settings,
        coresignal_base_url=simulator.base_url,
        queue_window=WINDOW,
        input_chunk_size=50,
        collect_rps=200,
        worker_concurrency=10,
    )


@pytest.fixture
async def windowed(small_window: Settings) -> AsyncIterator[Services]:
    async with opened_services(small_window) as opened:
        yield opened


@pytest.mark.slow
async def test_the_queue_holds_a_bounded_window_while_inputs_wait_in_mongodb(
    small_window: Settings, windowed: Services
) -> None:
    receipt = await enqueue_ids(windowed, population_ids(300, first=0))
    assert receipt.accepted == 300
    assert await windowed.queue.depth(keys.JOB_QUEUE) == WINDOW
    assert await windowed.store.runs.count_input_chunks(receipt.run_id) == 6

    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, await windowed.queue.depth(keys.JOB_QUEUE))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch())
    try:
        await run_fleet_worker(small_window, burst=True)
    finally:
        watcher.cancel()
    status = await get_status(windowed, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED and status.done == 300
    assert peak <= WINDOW + len(PERIODIC_JOBS)  # + the periodic jobs themselves (feeder, reconciler, ...)


@pytest.mark.slow
async def test_a_small_run_is_not_starved_by_a_large_one(small_window: Settings, windowed: Services) -> None:
    large = await enqueue_ids(windowed, population_ids(400, first=0))
    small = await enqueue_ids(windowed, population_ids(20, first=500))
    worker = asyncio.create_task(run_fleet_worker(with_overrides(small_window, collect_rps=60), burst=True))
    try:
        deadline = time.monotonic() + 60
        while True:
            status = await get_status(windowed, small.run_id)
            assert status is not None and time.monotonic() < deadline, "the small run did not finish"
            if status.state == RunState.FINISHED:
                break
            await asyncio.sleep(0.05)
        big = await get_status(windowed, large.run_id)
        assert big is not None
        # The small run was fed half of every refill: it is done while most of the large one is not.
        assert big.processed < 400 / 2
    finally:
        await worker


@pytest.mark.slow
async def test_pause_takes_queued_jobs_out_and_resume_finishes_the_run(
    small_window: Settings, windowed: Services, simulator: RunningSimulator
) -> None:
    receipt = await enqueue_ids(windowed, population_ids(100, first=0))
    paused = await pause_run(windowed, receipt.run_id)
    assert paused.state == RunState.PAUSED
    assert await windowed.queue.depth(keys.JOB_QUEUE) == 0

    await run_fleet_worker(small_window, burst=True)  # nothing to do while paused
    assert simulator.state.stats()["requests_total"] == 0

    resumed = await resume_run(windowed, receipt.run_id)
    assert resumed.state == RunState.RUNNING
    await run_fleet_worker(small_window, burst=True)
    status = await get_status(windowed, receipt.run_id)
    assert status is not None and status.state == RunState.FINISHED and status.done == 100
    assert simulator.state.stats()["classes"]["collect"]["accepted"] == 100  # each profile once


@pytest.mark.slow
async def test_cancel_removes_queued_jobs_and_the_run_stays_cancelled(
    small_window: Settings, windowed: Services, simulator: RunningSimulator
) -> None:
    other = await enqueue_ids(windowed, population_ids(10, first=200))
    receipt = await enqueue_ids(windowed, population_ids(100, first=0))
    cancelled = await cancel_run(windowed, receipt.run_id)
    assert cancelled.state == RunState.CANCELLED and cancelled.finished_at is not None
    remaining = await windowed.queue.job_args(
        [keys.collect_job_id(f"id:{Population.id_at(i)}") for i in range(200, 210)]
    )
    assert all(args is not None and args[0] == other.run_id for args in remaining)  # other runs untouched

    await run_fleet_worker(small_window, burst=True)
    status = await get_status(windowed, receipt.run_id)
    assert status is not None and status.state == RunState.CANCELLED and status.done == 0
    assert simulator.state.stats()["classes"]["collect"]["accepted"] == 10
    with pytest.raises(RunStateError, match="cancelled"):
        await resume_run(windowed, receipt.run_id)


async def test_state_rules_and_unknown_runs(windowed: Services) -> None:
    receipt = await enqueue_ids(windowed, population_ids(5, first=0))
    with pytest.raises(RunStateError, match="only from paused"):
        await resume_run(windowed, receipt.run_id)
    with pytest.raises(RunNotFoundError):
        await pause_run(windowed, "no-such-run")


async def test_runs_are_listed_newest_first_with_a_cursor_and_a_state_filter(windowed: Services) -> None:
    created = [(await enqueue_ids(windowed, population_ids(3, first=i * 10))).run_id for i in range(5)]
    await cancel_run(windowed, created[1])

    seen: list[str] = []
    cursor = None
    for _ in range(10):  # 5 runs, 2 a page: 3 pages; more means the cursor loops
        page = await list_runs(windowed, state=None, limit=2, cursor=cursor)
        seen += [run.run_id for run in page.runs]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(created))
    cancelled = await list_runs(windowed, state="cancelled", limit=10, cursor=None)
    assert [run.run_id for run in cancelled.runs] == [created[1]]


async def test_eta_comes_from_the_remaining_jobs_and_the_runs_share_of_the_budget(
    small_window: Settings, windowed: Services
) -> None:
    first = await enqueue_ids(windowed, population_ids(97, first=0))
    status = await get_status(windowed, first.run_id)
    rate = small_window.collect_rps * (1 - small_window.rate_safety_margin)
    assert status is not None and status.eta_s == pytest.approx(97 / rate)
    await enqueue_ids(windowed, population_ids(10, first=100))
    shared = await get_status(windowed, first.run_id)
    assert shared is not None and shared.eta_s == pytest.approx(97 / (rate / 2))
    assert math.isclose(shared.as_dict()["eta_s"], round(97 / (rate / 2), 1))
