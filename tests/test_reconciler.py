"""The reconciler: a running run that Redis lost (queue window, in-flight jobs, counters) is rebuilt
from MongoDB with no one asking; a healthy or paused run is left alone. Real Redis and Mongo-wire."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from config import Settings
from jobs.control import pause_run
from jobs.reconciler import reconcile
from jobs.runs import RunState, get_status
from tests.conftest import enqueue_ids, population_ids, with_overrides
from worker import keys
from worker.runtime import Services

AFTER_S = 0.3


@pytest.fixture
async def quick(settings: Settings, services: Services) -> AsyncIterator[Services]:
    """Services whose reconciler calls a run stalled after AFTER_S (same Redis db and database)."""
    opened = await Services.open(with_overrides(settings, reconcile_after_s=AFTER_S))
    try:
        yield opened
    finally:
        await opened.close()


async def _two_looks(services: Services) -> tuple[list[str], list[str]]:
    first = await reconcile(services)
    await asyncio.sleep(AFTER_S * 1.5)
    return first, await reconcile(services)


@pytest.mark.slow
async def test_a_run_redis_lost_is_refed_from_mongodb_unasked(quick: Services) -> None:
    receipt = await enqueue_ids(quick, population_ids(20))
    assert await quick.queue.depth(keys.JOB_QUEUE) == 20
    await quick.redis.flushdb()  # Redis restarted empty: queue, counters, locks, all gone

    first, second = await _two_looks(quick)

    assert first == [], "one look is not enough: the run must stay stalled for RECONCILE_AFTER_S"
    assert second == [receipt.run_id]
    assert await quick.queue.depth(keys.JOB_QUEUE) == 20  # every item is queued again
    status = await get_status(quick, receipt.run_id)
    assert status is not None and status.state == RunState.RUNNING
    assert status.counts.get("accepted") == 20  # the run's size is known to Redis again


@pytest.mark.slow
async def test_a_run_whose_jobs_vanished_but_counters_survived_is_refed(quick: Services) -> None:
    receipt = await enqueue_ids(quick, population_ids(12))
    # A failover that lost the latest writes: the jobs (their keys and queue entries), not the counters.
    job_keys = [key async for key in quick.redis.scan_iter(match="arq:job:*")]
    await quick.redis.delete(keys.JOB_QUEUE, *job_keys)

    first, second = await _two_looks(quick)

    assert (first, second) == ([], [receipt.run_id])
    assert await quick.queue.depth(keys.JOB_QUEUE) == 12


@pytest.mark.slow
async def test_a_run_with_queued_jobs_is_left_alone(quick: Services) -> None:
    await enqueue_ids(quick, population_ids(10))
    assert await _two_looks(quick) == ([], [])
    assert await quick.queue.depth(keys.JOB_QUEUE) == 10


@pytest.mark.slow
async def test_a_paused_run_waits_for_resume(quick: Services) -> None:
    receipt = await enqueue_ids(quick, population_ids(10))
    await pause_run(quick, receipt.run_id)
    await quick.redis.flushdb()

    assert await _two_looks(quick) == ([], [])
    status = await get_status(quick, receipt.run_id)
    assert status is not None and status.state == RunState.PAUSED
    assert await quick.queue.depth(keys.JOB_QUEUE) == 0
