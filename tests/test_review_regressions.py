"""Regressions for the correctness review of commit 7464cc7 (/work/shared/reviews/correctness-2026-12.md).

One test per finding, each a specification of the fixed behaviour (the finding's number is in the
comment above it; the review's experiment letters A-N where it had one). Real Redis, the Mongo-wire
server and the simulator on a socket. Where a finding is a race, the test forces the interleaving
by running the real jobs in the order the race needs (`run_job`, or a one-shot hook on the
feeder's walk); where it is a store that fails, the store is a real client to a server that fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
from arq import Retry
from arq.constants import job_key_prefix, retry_key_prefix
from pymongo import AsyncMongoClient

import jobs.feeder as feeder
from cli.wiring import JOB_FUNCTIONS, run_fleet_worker
from config import Settings
from devstack.processes import free_port
from jobs.collect import collect
from jobs.control import cancel_run, pause_for_credits, pause_run, recover_run, resume_run
from jobs.deadletter import requeue_dead_letters
from jobs.feeder import MAX_CHUNKS_PER_WALK, feed
from jobs.producers import Receipt
from jobs.runs import RunStatus, create_run, get_status
from jobs.search import _fetch_and_fan_out, search_page, start_search_run
from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import MakeSimulator, enqueue_ids, with_overrides, worker_context
from worker import keys
from worker.credits import CreditsGate
from worker.errors import RetryJob, StoreRejectedError
from worker.progress import RunProgress
from worker.queue import ARQ_MAX_TRIES, JobQueue, WorkerOptions, _arq_worker, _as_arq_job
from worker.retry import RetryPolicy
from worker.run_model import FeedCursor, Outcome, RunKind, RunState, utcnow
from worker.runtime import Services, WorkerContext
from worker.stash import ProfileStash
from worker.store import MongoStore
from worker.store.employees import SinkOutcome, content_hash
from worker.waiters import ItemWaiters

POPULATION = 1000
# No sort: the API's default order (last_updated, id), so an employee updated mid-paging moves
# behind the cursor and shows up again on a later page.
GERMANY = {"query": {"term": {"location_country": "Germany"}}}
GERMANY_BY_ID = {**GERMANY, "sort": ["id"]}
PAGE = 20
# Each simulated job change moves last_updated 35 days on; profiles are at most 400 days old.
# This many changes put an employee after every other one in the default order.
CHANGES_TO_BE_NEWEST = 12


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=POPULATION, search_rps=50)


@pytest.fixture
def tiny(settings: Settings, simulator: RunningSimulator) -> Settings:
    """A queue window of 10 and input chunks of 5, so a few ids exercise every feeder path."""
    return with_overrides(
        settings,
        coresignal_base_url=simulator.base_url,
        queue_window=10,
        input_chunk_size=5,
        collect_rps=300,
        search_rps=40,
        search_items_per_page=PAGE,
        worker_concurrency=10,
    )


@pytest.fixture
async def ctx(tiny: Settings) -> AsyncIterator[dict[str, Any]]:
    """A worker's context, as a fleet worker builds it: real client, limiter, stores."""
    async with worker_context(tiny) as context:
        yield context


@pytest.fixture
def services(ctx: dict[str, Any]) -> Services:
    return cast(Services, ctx["services"])


def ids(*indexes: int) -> list[int]:
    return [Population.id_at(i) for i in indexes]


def matching(simulator: RunningSimulator) -> list[int]:
    population = Population(seed=simulator.state.config.seed, size=POPULATION)
    return [
        i for i in population.iter_ids() if (population.profile(i) or {}).get("location_country") == "Germany"
    ]


async def queued(services: Services) -> dict[str, tuple[Any, ...]]:
    """The queued collect jobs: job id -> (run id, item key)."""
    job_ids = [j.decode() for j in await services.redis.zrange(keys.JOB_QUEUE, 0, -1)]
    collect_ids = [j for j in job_ids if keys.item_of_collect_job(j) is not None]
    found = await services.queue.job_args(collect_ids)
    return {j: a for j, a in zip(collect_ids, found, strict=True) if a is not None}


async def run_job(ctx: dict[str, Any], job_id: str, **overrides: Any) -> str:
    """Run one queued job as a worker does, then drop it (keep_result=0). A job that raises (a
    RetryJob) stays queued, as arq keeps a job it retries."""
    services: Services = ctx["services"]
    (args,) = await services.queue.job_args([job_id])
    assert args is not None, f"no job {job_id}"
    job = collect if keys.item_of_collect_job(job_id) is not None else search_page
    outcome = await job(cast(WorkerContext, {**ctx, "job_id": job_id, "job_try": 1, **overrides}), *args)
    await services.redis.delete(job_key_prefix + job_id)
    await services.redis.zrem(keys.JOB_QUEUE, job_id)
    return outcome


async def status(services: Services, run_id: str) -> RunStatus:
    found = await get_status(services, run_id)
    assert found is not None
    return found


async def burst(settings: Settings) -> None:
    await run_fleet_worker(settings, burst=True)


def charged(simulator: RunningSimulator) -> int:
    return int(simulator.state.stats()["credits_charged"])


def make_newest(simulator: RunningSimulator, employee_id: int) -> None:
    for _ in range(CHANGES_TO_BE_NEWEST):
        simulator.state.population.mutate(employee_id)


type Walk = Callable[[Services, str, list[str], int, int], Awaitable[tuple[list[str], int]]]


def before_first_walk(monkeypatch: pytest.MonkeyPatch, action: Callable[[str], Awaitable[Any]]) -> None:
    """Run `action(run_id)` once, after a feed read its runs and before it walks the first one."""
    real: Walk = feeder._uncounted

    async def racing(
        services: Services, run_id: str, chunk: list[str], offset: int, want: int
    ) -> tuple[list[str], int]:
        monkeypatch.setattr(feeder, "_uncounted", real)
        await action(run_id)
        return await real(services, run_id, chunk, offset, want)

    monkeypatch.setattr(feeder, "_uncounted", racing)


# --- items another run's job is collecting (#2, #7) -----------------------------------------


# 2 (B)
@pytest.mark.slow
async def test_a_run_waiting_on_a_cancelled_runs_job_is_handed_it_and_collects_the_items(
    tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    owner = await enqueue_ids(services, ids(1, 2, 3))
    waiter = await enqueue_ids(services, ids(1, 2, 3))
    waiting = await status(services, waiter.run_id)
    assert (waiting.state, waiting.processed, waiting.counts.get("shared")) == (RunState.RUNNING, 0, 3)

    await cancel_run(services, owner.run_id)

    assert [args[0] for args in (await queued(services)).values()] == [waiter.run_id] * 3
    await burst(tiny)
    done = await status(services, waiter.run_id)
    assert (done.state, done.counts.get("inserted")) == (RunState.FINISHED, 3)
    assert charged(simulator) == 3


# 7 (A)
@pytest.mark.slow
async def test_a_run_whose_last_items_wait_on_another_runs_jobs_finishes_when_those_jobs_do(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    first = await enqueue_ids(services, ids(1, 2, 3, 4, 5))
    second = await enqueue_ids(services, ids(101, 102, 103, 104, 105, 1, 2, 3, 4, 5))  # window: 101..105
    for job_id, (run_id, _) in (await queued(services)).items():
        if run_id == second.run_id:
            await run_job(ctx, job_id)
    await feed(services)  # the tick: the second run's tail is queued for the first run already
    tail = await status(services, second.run_id)
    assert (tail.state, tail.processed, tail.counts.get("shared")) == (RunState.RUNNING, 5, 5)

    await burst(tiny)

    for receipt in (first, second):
        assert (await status(services, receipt.run_id)).state is RunState.FINISHED
    assert (await status(services, second.run_id)).done == 10
    assert charged(simulator) == 10


# --- recover (#3, #8, #28) ------------------------------------------------------------------


# 3 (K)
@pytest.mark.slow
async def test_recovering_a_run_whose_producer_died_before_publishing_collects_every_stored_item(
    tiny: Settings, services: Services
) -> None:
    run = await create_run(services, RunKind.IDS, "test")
    wanted = ids(*range(20))
    for seq in range(4):  # what the producer stored before its process died
        await services.store.runs.save_inputs(
            run.run_id, seq, [f"id:{i}" for i in wanted[seq * 5 : seq * 5 + 5]]
        )
    await services.store.runs.move(run.run_id, RunState.RUNNING, only_from=frozenset({RunState.ENQUEUEING}))
    await feed(services)

    report = await recover_run(services, run.run_id)

    assert report.pending == 20
    recovered = await status(services, run.run_id)
    assert (recovered.state, recovered.accepted) == (RunState.RUNNING, 20)
    await burst(tiny)
    final = await status(services, run.run_id)
    assert (final.state, final.accepted, final.counts.get("inserted")) == (RunState.FINISHED, 20, 20)


# 8 (F)
@pytest.mark.slow
async def test_a_search_run_with_fresh_skips_recovered_after_redis_lost_everything_finishes(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    first_ten = sorted(matching(simulator))[:10]
    for i in first_ten[:2]:  # synced a moment ago: the search skips them as fresh
        await services.store.employees.upsert(i, {"id": i}, run_id="earlier", fetched_at=utcnow())
    run_id = await start_search_run(services, GERMANY_BY_ID, max_profiles=10, source="test")
    await run_job(ctx, keys.search_page_job_id(run_id, 0))
    assert (await status(services, run_id)).counts.get("skipped_fresh") == 2

    await services.redis.flushdb()  # Redis restarted empty: the queue and the counters are gone
    await recover_run(services, run_id)
    await burst(tiny)

    final = await status(services, run_id)
    assert final.state is RunState.FINISHED
    assert (final.counts.get("skipped_fresh"), final.counts.get("inserted")) == (2, 8)


# 28
@pytest.mark.slow
async def test_recover_does_not_count_an_employee_this_run_tombstoned_as_recovered(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    gone, kept, third = ids(7, 8, 9)
    await enqueue_ids(services, [gone])
    await burst(tiny)  # mirrored earlier
    simulator.state.population.remove(gone)
    run = await enqueue_ids(services, [gone, kept, third])
    for job_id, (_, item_key) in (await queued(services)).items():
        if item_key != f"id:{third}":
            await run_job(ctx, job_id)  # gone is tombstoned by this run, kept is inserted
    await services.redis.flushdb()

    report = await recover_run(services, run.run_id)

    assert (report.recovered, report.pending) == (1, 2)
    await burst(tiny)
    final = await status(services, run.run_id)
    assert final.state is RunState.FINISHED
    assert (final.counts.get("recovered"), final.counts.get("not_found"), final.counts.get("inserted")) == (
        1,
        1,
        1,
    )


# --- search pages (#6, #9, #24) -------------------------------------------------------------


@contextlib.asynccontextmanager
async def outage(services: Services, store: str) -> AsyncIterator[Services]:
    """The same services with MongoDB or Redis replaced by a client to a port nothing listens on."""
    url_port = free_port()
    if store == "mongodb":
        down = MongoStore.open(f"mongodb://127.0.0.1:{url_port}", "down", timeout_s=0.3)
        try:
            yield dataclasses.replace(services, store=down)
        finally:
            await down.close()
        return
    client = aioredis.Redis.from_url(f"redis://127.0.0.1:{url_port}/0")
    try:
        yield dataclasses.replace(
            services,
            redis=client,
            queue=JobQueue(client),
            progress=RunProgress(client),
            stash=ProfileStash(client),
            credits=CreditsGate(client),
            waiters=ItemWaiters(client),
        )
    finally:
        await client.aclose()


# 6 (G)
@pytest.mark.parametrize("store", ["mongodb", "redis"])
@pytest.mark.slow
async def test_a_search_page_job_whose_store_fails_at_its_start_is_retried_not_failed(
    ctx: dict[str, Any], services: Services, store: str
) -> None:
    run_id = await start_search_run(services, GERMANY, max_profiles=None, source="test")
    job = _as_arq_job(keys.SEARCH_PAGE_JOB, search_page, 16.0, 3, 3.0)

    async with outage(services, store) as down:
        with pytest.raises(Retry):
            await job({**ctx, "services": down, "job_try": 1}, run_id, 0, 0)

    assert (await status(services, run_id)).state is RunState.RUNNING


# 9 (J)
@pytest.mark.slow
async def test_an_employee_updated_mid_search_who_shows_up_on_a_later_page_too_is_counted_once(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    expected = matching(simulator)
    run_id = await start_search_run(services, GERMANY, max_profiles=None, source="test")
    await run_job(ctx, keys.search_page_job_id(run_id, 0))
    first_page = await services.store.runs.input_chunk(run_id, 0)
    assert first_page is not None
    moved = int(first_page[0].removeprefix("id:"))
    make_newest(simulator, moved)
    run = await services.store.runs.get(run_id)
    assert run is not None and run.search is not None
    rest = await ctx["client"].search(GERMANY, after=run.search.cursor, items_per_page=1000)
    assert moved in rest.ids  # premise: a later page lists it again

    await burst(tiny)

    final = await status(services, run_id)
    assert final.state is RunState.FINISHED
    assert final.accepted == final.processed == final.counts.get("inserted") == len(expected)


# 24
@pytest.mark.slow
async def test_two_jobs_that_fetched_one_search_page_store_it_once_and_count_the_same_ids(
    ctx: dict[str, Any], services: Services, simulator: RunningSimulator
) -> None:
    head = (await ctx["client"].search(GERMANY, items_per_page=PAGE + 1)).ids
    page0, next_in_line = head[:PAGE], head[PAGE]
    # Fresh: a page 0 that listed it would count it skipped_fresh.
    await services.store.employees.upsert(
        next_in_line, {"id": next_in_line}, run_id="earlier", fetched_at=utcnow()
    )
    run_id = await start_search_run(services, GERMANY, max_profiles=None, source="test")
    snapshot = await services.store.runs.get(run_id)  # both jobs read the run before either advanced it
    assert snapshot is not None
    wctx = cast(WorkerContext, ctx)

    assert (await _fetch_and_fan_out(wctx, snapshot, 0)).startswith("page 0")
    make_newest(simulator, page0[0])  # page 0 now lists next_in_line instead
    assert next_in_line in (await ctx["client"].search(GERMANY, items_per_page=PAGE)).ids
    late = await _fetch_and_fan_out(wctx, snapshot, 0)

    assert late.startswith("stale")
    assert await services.store.runs.input_chunk(run_id, 0) == [f"id:{i}" for i in page0]
    run = await services.store.runs.get(run_id)
    assert run is not None and run.search is not None and run.search.ids_seen == PAGE
    assert (await status(services, run_id)).counts.get("skipped_fresh", 0) == 0


# --- dead-letter requeue (#10, #22) ---------------------------------------------------------


async def dead_letter_one(
    ctx: dict[str, Any], services: Services, simulator: RunningSimulator, item: int
) -> Receipt:
    """A run of one id whose only job fails for good (every upstream answer a 5xx, one try)."""
    run = await enqueue_ids(services, [item])
    (job_id,) = await queued(services)
    simulator.state.config.error_rate_5xx = 1.0
    try:
        assert await run_job(ctx, job_id, retry=RetryPolicy(max_tries=1)) == Outcome.FAILED
    finally:
        simulator.state.config.error_rate_5xx = 0.0
    assert (await status(services, run.run_id)).state is RunState.FINISHED
    assert await services.store.dead_letters.count(run.run_id) == 1
    return run


# 10 (C)
@pytest.mark.slow
async def test_a_requeued_dead_letter_whose_job_another_run_holds_waits_on_that_job_and_finishes(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    (item,) = ids(7)
    first = await dead_letter_one(ctx, services, simulator, item)
    holder = await enqueue_ids(services, [item])  # this run now holds collect:id:<item>

    assert await requeue_dead_letters(services, run_id=first.run_id, reason=None) == 1

    assert [args[0] for args in (await queued(services)).values()] == [holder.run_id]
    await burst(tiny)
    for receipt in (first, holder):
        final = await status(services, receipt.run_id)
        assert (final.state, final.counts.get("inserted"), final.counts.get("failed", 0)) == (
            RunState.FINISHED,
            1,
            0,
        )
    assert await services.store.dead_letters.count(first.run_id) == 0


# 10 (C), the holding job ending as the requeue lands
@pytest.mark.slow
async def test_a_requeue_that_lands_as_the_holding_job_ends_takes_its_outcome_and_finishes_the_run(
    ctx: dict[str, Any], services: Services, simulator: RunningSimulator
) -> None:
    (item,) = ids(10)
    first = await dead_letter_one(ctx, services, simulator, item)
    holder = await enqueue_ids(services, [item])
    job_ctx = cast(WorkerContext, {**ctx, "job_try": 1})
    assert await collect(job_ctx, holder.run_id, f"id:{item}") == Outcome.INSERTED
    # The holder's job has released its waiters; arq has not deleted its job key yet.

    assert await requeue_dead_letters(services, run_id=first.run_id, reason=None) == 1

    final = await status(services, first.run_id)
    assert (final.state, final.counts.get("inserted"), final.counts.get("failed", 0)) == (
        RunState.FINISHED,
        1,
        0,
    )


# 10 (D)
@pytest.mark.slow
async def test_a_dead_letter_requeued_after_redis_lost_the_runs_counters_lets_the_run_finish(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    first = await dead_letter_one(ctx, services, simulator, ids(8)[0])
    await services.redis.delete(keys.run_counts_key(first.run_id), keys.run_done_key(first.run_id))

    assert await requeue_dead_letters(services, run_id=first.run_id, reason=None) == 1
    await burst(tiny)

    final = await status(services, first.run_id)
    assert (final.state, final.accepted, final.counts.get("inserted")) == (RunState.FINISHED, 1, 1)


# 22
@pytest.mark.slow
async def test_requeueing_a_stale_dead_letter_whose_item_later_succeeded_changes_no_count(
    tiny: Settings, services: Services
) -> None:
    (item,) = ids(9)
    run = await enqueue_ids(services, [item])
    await burst(tiny)
    # Left by an earlier try whose outcome write failed after the letter was written; a retry succeeded.
    await services.store.dead_letters.put(
        run_id=run.run_id, item_key=f"id:{item}", reason="x", error_type="X", attempts=6, now=utcnow()
    )

    assert await requeue_dead_letters(services, run_id=run.run_id, reason=None) == 0

    final = await status(services, run.run_id)
    assert (final.state, final.processed, final.counts.get("inserted")) == (RunState.FINISHED, 1, 1)
    assert final.counts.get("failed", 0) == 0
    assert await queued(services) == {}
    assert await services.store.dead_letters.count(run.run_id) == 0


# --- the feed cursor (#11, #12) -------------------------------------------------------------


# 11 (L)
async def test_a_feed_cursor_read_before_a_rewind_cannot_be_written_over_it(services: Services) -> None:
    run = await enqueue_ids(services, ids(*range(20)))  # window 10: the cursor is at chunk 2
    before = await services.store.runs.get(run.run_id)
    assert before is not None and before.feed.seq == 2

    await recover_run(services, run.run_id)  # rewinds the cursor under a new epoch

    stale = FeedCursor(seq=4, offset=0, done=True, epoch=before.feed.epoch)
    assert not await services.store.runs.save_feed_cursor(run.run_id, stale)
    after = await services.store.runs.get(run.run_id)
    assert after is not None and after.feed == FeedCursor(0, 0, False, before.feed.epoch + 1)


# 11 (L), the race end to end
@pytest.mark.slow
async def test_a_feed_in_flight_when_recover_rewinds_the_run_leaves_the_rewind_in_place(
    tiny: Settings, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = await enqueue_ids(services, ids(*range(20)))
    await services.redis.flushdb()  # Redis restarted empty: ids 1..10's queued jobs are gone
    before_first_walk(
        monkeypatch, lambda run_id: recover_run(services, run_id)
    )  # its own feed finds the lock taken

    await feed(services)  # the tick that was walking when recover landed

    after = await services.store.runs.get(run.run_id)
    assert after is not None and (after.feed.seq, after.feed.offset, after.feed.done) == (0, 0, False)
    await burst(tiny)
    final = await status(services, run.run_id)
    assert (final.state, final.counts.get("inserted")) == (RunState.FINISHED, 20)


# 12
@pytest.mark.slow
async def test_a_rewound_walk_over_counted_items_saves_the_cursor_per_chunk_and_stops_after_a_bounded_walk(
    tiny: Settings, services: Services
) -> None:
    counted_chunks = MAX_CHUNKS_PER_WALK + 5
    wanted = ids(*range((counted_chunks + 5) * 5))
    run = await enqueue_ids(services, wanted)
    await pause_run(services, run.run_id)
    counted = [(f"id:{i}", Outcome.INSERTED.value) for i in wanted[: counted_chunks * 5]]
    await services.progress.record_many(run.run_id, counted)  # collected before the pause

    await resume_run(services, run.run_id)  # rewinds; its feed walks counted chunks only

    walked = await services.store.runs.get(run.run_id)
    assert walked is not None and (walked.feed.seq, walked.feed.offset) == (MAX_CHUNKS_PER_WALK, 0)
    assert await services.queue.depth(keys.JOB_QUEUE) == 0
    assert await feed(services) == 10  # the next call goes on: 5 counted chunks, then 2 of new items
    fed = await services.store.runs.get(run.run_id)
    assert fed is not None and fed.feed.seq == counted_chunks + 2
    expected = sorted(f"id:{i}" for i in wanted[counted_chunks * 5 : counted_chunks * 5 + 10])
    assert sorted(args[1] for args in (await queued(services)).values()) == expected
    await burst(tiny)
    assert (await status(services, run.run_id)).state is RunState.FINISHED


# --- cancel and pause are enforced (#17, #20) -----------------------------------------------


# 17 (M)
async def test_jobs_a_feed_queues_for_a_run_cancelled_under_it_spend_no_credit(
    tiny: Settings, services: Services, simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_first_walk(monkeypatch, lambda run_id: cancel_run(services, run_id))
    run = await enqueue_ids(services, ids(*range(10)))
    assert [args[0] for args in (await queued(services)).values()] == [run.run_id] * 5  # they got in

    await burst(tiny)

    assert simulator.state.stats()["requests_total"] == 0
    final = await status(services, run.run_id)
    assert (final.state, final.processed) == (RunState.CANCELLED, 0)


# 17 (M), pause
@pytest.mark.slow
async def test_jobs_a_feed_queues_for_a_run_paused_under_it_spend_nothing_until_it_resumes(
    tiny: Settings, services: Services, simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    before_first_walk(monkeypatch, lambda run_id: pause_run(services, run_id))
    run = await enqueue_ids(services, ids(*range(10)))
    assert len(await queued(services)) == 5

    await burst(tiny)
    assert simulator.state.stats()["requests_total"] == 0
    assert (await status(services, run.run_id)).processed == 0

    await resume_run(services, run.run_id)
    await burst(tiny)
    final = await status(services, run.run_id)
    assert (final.state, final.counts.get("inserted")) == (RunState.FINISHED, 10)


# 20
async def test_taking_a_job_out_of_the_queue_also_forgets_arqs_count_of_its_tries(services: Services) -> None:
    run = await enqueue_ids(services, ids(1))
    (job_id,) = await queued(services)
    await services.redis.set(retry_key_prefix + job_id, 5)  # arq's counter: five earlier tries

    await pause_run(services, run.run_id)

    assert await services.redis.exists(job_key_prefix + job_id, retry_key_prefix + job_id) == 0


# --- the sink and the stash (#18, #25, #27, #19) --------------------------------------------


# 18
@pytest.mark.slow
async def test_a_stashed_profile_written_later_keeps_its_fetch_time_and_is_not_passed_off_as_fresh(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    (item,) = ids(5)
    fetched = await ctx["client"].collect(str(item))  # paid for an hour ago; its write failed
    fetched_at = (utcnow() - timedelta(hours=1)).replace(microsecond=0)
    await services.stash.put(f"id:{item}", fetched.data, fetched_at)

    await enqueue_ids(services, [item])
    await burst(tiny)

    doc = await services.store.employees.get(item)
    assert doc is not None and doc["sync"]["synced_at"] == fetched_at
    assert charged(simulator) == 1  # written from the stash, not bought again
    recent = utcnow() - timedelta(minutes=30)
    assert await services.store.employees.fresh_ids([item], synced_since=recent) == set()


# 18
async def test_an_older_fetch_never_replaces_a_newer_one(services: Services) -> None:
    newer = utcnow().replace(microsecond=0)
    sink = services.store.employees
    await sink.upsert(1, {"id": 1, "headline": "new"}, run_id="a", fetched_at=newer)

    late = await sink.upsert(
        1, {"id": 1, "headline": "old"}, run_id="b", fetched_at=newer - timedelta(minutes=5)
    )

    assert late is SinkOutcome.UNCHANGED
    doc = await sink.get(1)
    assert doc is not None
    assert (doc["profile"]["headline"], doc["sync"]["synced_at"], doc["sync"]["run_id"]) == (
        "new",
        newer,
        "a",
    )


# 25
async def test_touching_an_unchanged_profile_never_revives_a_tombstone(services: Services) -> None:
    sink, profile, t0 = services.store.employees, {"id": 1, "headline": "x"}, utcnow().replace(microsecond=0)
    await sink.upsert(1, profile, run_id="a", fetched_at=t0)
    assert await sink.tombstone(1, run_id="b", now=t0 + timedelta(minutes=1))

    # An upsert that read the live document before the tombstone landed now touches it:
    assert not await sink._touch(1, content_hash(profile), "c", t0 + timedelta(seconds=30), "id")
    # and, comparing again, finds the tombstone newer than its fetch.
    assert (
        await sink.upsert(1, profile, run_id="c", fetched_at=t0 + timedelta(seconds=30))
        is SinkOutcome.UNCHANGED
    )
    doc = await sink.get(1)
    assert doc is not None and doc["sync"]["deleted_at"] == t0 + timedelta(minutes=1)
    assert doc["sync"]["run_id"] == "b"
    # A fetch after the 404 is news: the profile is alive again.
    assert (
        await sink.upsert(1, profile, run_id="d", fetched_at=t0 + timedelta(minutes=2)) is SinkOutcome.CHANGED
    )
    revived = await sink.get(1)
    assert revived is not None and revived["sync"]["deleted_at"] is None


@contextlib.asynccontextmanager
async def unresponsive_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers: a MongoDB that hangs."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


# 27
@pytest.mark.slow
async def test_a_deadline_during_the_write_after_a_paid_fetch_keeps_the_profile_for_the_retry(
    ctx: dict[str, Any], tiny: Settings, services: Services, simulator: RunningSimulator
) -> None:
    (item,) = ids(6)
    run = await enqueue_ids(services, [item])
    (job_id,) = await queued(services)
    # A 4 s deadline: past a fresh bucket's first slot (2 s ahead, review #16), inside the hung write.
    job = _as_arq_job(keys.COLLECT_JOB, collect, 4.0, 3, 3.0)

    async with unresponsive_server() as port:
        hung = MongoStore.open(f"mongodb://127.0.0.1:{port}", "hung", timeout_s=30)
        sink, services.store.employees = services.store.employees, hung.employees  # the write hangs
        try:
            with pytest.raises(Retry):
                await job({**ctx, "job_id": job_id, "job_try": 1}, run.run_id, f"id:{item}")
        finally:
            services.store.employees = sink
            await hung.close()
    assert charged(simulator) == 1

    await burst(tiny)  # the retry (the job is still queued)

    final = await status(services, run.run_id)
    assert (final.state, final.counts.get("inserted")) == (RunState.FINISHED, 1)
    assert charged(simulator) == 1  # written from the stash: one credit in all


# 19
async def test_a_retry_of_a_job_whose_profile_was_written_but_not_counted_counts_it_recovered_unpaid(
    ctx: dict[str, Any], services: Services, simulator: RunningSimulator
) -> None:
    (item,) = ids(9)
    run = await enqueue_ids(services, [item])
    (job_id,) = await queued(services)
    await services.redis.set(keys.run_done_key(run.run_id), "not a hash")  # Redis refuses the count
    with pytest.raises(RetryJob):
        await run_job(ctx, job_id)
    assert await services.store.employees.get(item) is not None
    await services.redis.delete(keys.run_done_key(run.run_id))

    assert await run_job(ctx, job_id, job_try=2) == Outcome.RECOVERED

    final = await status(services, run.run_id)
    assert (final.state, final.counts.get("recovered")) == (RunState.FINISHED, 1)
    assert charged(simulator) == 1


# --- a document MongoDB refuses (#5) --------------------------------------------------------


async def refuse_employee(mongo_url: str, database: str, employee_id: int) -> None:
    """Give `employees` a validator (as an operator might) that refuses one employee's document."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await client[database].drop_collection("employees")
        await client[database].create_collection("employees", validator={"_id": {"$ne": employee_id}})
    finally:
        await client.close()


# 5
@pytest.mark.slow
async def test_a_profile_mongodb_refuses_is_dead_lettered_at_once_not_retried_as_an_outage(
    tiny: Settings, services: Services, mongo_url: str
) -> None:
    refused, fine = ids(3, 4)
    await refuse_employee(mongo_url, tiny.mongodb_database, refused)
    run = await enqueue_ids(services, [refused, fine])

    async with asyncio.timeout(120):  # a refusal retried as an outage would never end
        await burst(tiny)

    final = await status(services, run.run_id)
    assert (final.state, final.counts.get("failed"), final.counts.get("inserted")) == (
        RunState.FINISHED,
        1,
        1,
    )
    assert final.counts.get("retries", 0) == 0
    (letter,) = await services.store.dead_letters.list(run.run_id)
    assert (letter.item_key, letter.error_type, letter.attempts) == (f"id:{refused}", "StoreRejectedError", 1)


# 5
async def test_a_document_bson_cannot_encode_is_refused_as_permanent(services: Services) -> None:
    with pytest.raises(StoreRejectedError):
        await services.store.employees.upsert(1, {"id": 1, "bad\x00key": 1}, run_id="a", fetched_at=utcnow())


# 5
async def test_arq_never_drops_a_job_on_its_own(tiny: Settings) -> None:
    options = WorkerOptions(
        redis=tiny.redis_target(),
        queue_name=keys.JOB_QUEUE,
        concurrency=1,
        job_timeout_s=tiny.job_timeout_s,
        max_tries=tiny.max_tries,
        drain_timeout_s=1,
    )
    worker = _arq_worker(options, JOB_FUNCTIONS, {})
    try:
        assert worker.max_tries == ARQ_MAX_TRIES
        assert ARQ_MAX_TRIES > 365 * 24 * 3600  # a store outage retried every second for a year
    finally:
        await worker.close()


# -- #26: a late 402 must not undo a resume -------------------------------------------------------


async def test_26_a_402_to_a_request_sent_before_a_resume_neither_closes_the_gate_nor_pauses_the_run(
    services: Services,
) -> None:
    gate = services.credits
    receipt = await enqueue_ids(services, [Population.id_at(0)])
    looked, closed_and_resumed = asyncio.Event(), asyncio.Event()

    async def job_in_flight_across_the_resume() -> str:
        assert not await gate.exhausted()  # it looks at the gate and sends its request...
        looked.set()
        await closed_and_resumed.wait()  # ...another job's 402 closes the gate, a human resumes...
        return await pause_for_credits(services, receipt.run_id)  # ...then its own 402 arrives

    async def another_job_and_a_resume() -> None:
        await looked.wait()
        assert not await gate.exhausted()
        assert await gate.mark_exhausted()  # this 402 came before the resume: it closes the gate
        await gate.clear()  # the resume (credits were added)
        closed_and_resumed.set()

    in_flight = asyncio.create_task(job_in_flight_across_the_resume())
    await another_job_and_a_resume()
    with pytest.raises(RetryJob):  # the stale 402's job runs again instead
        await in_flight
    assert not await gate.exhausted(), "the resume still stands"
    status = await get_status(services, receipt.run_id)
    assert status is not None and status.state == RunState.RUNNING

    async def job_after_the_resume() -> bool:
        assert not await gate.exhausted()
        return await gate.mark_exhausted()

    assert await asyncio.create_task(job_after_the_resume()), "a 402 after the resume still closes it"
    assert await gate.exhausted()
