"""Search runs: an ES-DSL query → pages of employee ids (one job per page) → collect jobs.

The run document holds the query and the search state (`search.next_page`, `search.cursor`...).
Each page job draws a *search* slot from the global limiter, stores the page's ids with the run,
enqueues collect jobs for the ids not synced within the freshness TTL, then advances the run with a
compare-and-set on `search.next_page`. A page is therefore fetched again only if its job dies in
flight, and a restarted chain continues from the last completed page.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import structlog

from jobs.feeder import feed
from jobs.pause import pause_for_credits
from jobs.runs import RunState, create_run, finish_if_complete, new_run_id, utcnow
from worker import keys
from worker.errors import OutOfCreditsError, PermanentError, RateLimitedError, TransientError
from worker.queue import JobSpec
from worker.runtime import Services, WorkerContext

log = structlog.get_logger("employee_sync.search")

# While the run has more than search_max_queued ids found but not finished, a page job looks again
# after this long: the search runs ahead of the collect jobs by a bounded amount.
BACKPRESSURE_DEFER_S = 2.0


async def start_search_run(
    services: Services, body: dict[str, Any], *, max_profiles: int | None, source: str
) -> str:
    """Create a search run and enqueue its first page. The body must already be validated."""
    run_id = new_run_id()
    await create_run(services, run_id, "search", source)
    await services.store.runs.transition(
        run_id,
        [RunState.ENQUEUEING.value],
        {
            "state": RunState.RUNNING.value,
            # Stored as text: ES field paths contain dots, which MongoDB keys should not.
            "query_json": json.dumps(body, sort_keys=True),
            "max_profiles": max_profiles,
            "search": {
                "next_page": 0,
                "cursor": None,
                "pages_fetched": 0,
                "total_results": None,
                "ids_seen": 0,
                "enqueued": 0,
                "skipped_fresh": 0,
                "exhausted": False,
            },
        },
    )
    await enqueue_page(services, run_id, 0)
    return run_id


async def enqueue_page(services: Services, run_id: str, page_no: int, *, wait_no: int = 0) -> bool:
    job_id = keys.search_page_job_id(run_id, page_no) + (f":w{wait_no}" if wait_no else "")
    spec = JobSpec(job_id, (run_id, page_no, wait_no))
    if wait_no:
        added = await services.queue.enqueue_many(
            keys.JOB_QUEUE, keys.SEARCH_PAGE_JOB, [spec], defer_s=BACKPRESSURE_DEFER_S
        )
    else:
        added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.SEARCH_PAGE_JOB, [spec], priority=True)
    return added[0]


async def search_page(ctx: WorkerContext, run_id: str, page_no: int, wait_no: int = 0) -> str:
    """Fetch one page of a search run and enqueue its collect jobs; then chain the next page."""
    services = ctx["services"]
    structlog.contextvars.bind_contextvars(page=page_no)
    run = await services.store.runs.get(run_id)
    if run is None or run.get("state") != RunState.RUNNING.value:
        return "stale: run not running"
    state = run["search"]
    if state["exhausted"]:
        await _finalize(services, run_id, run)
        return "stale: search already complete"
    if page_no != state["next_page"]:
        # A duplicate or late job: make sure the chain goes on from where the run really is.
        await enqueue_page(services, run_id, int(state["next_page"]))
        return f"stale: run is at page {state['next_page']}"
    if await _backlog(services, run_id, run) > ctx["settings"].search_max_queued:
        await enqueue_page(services, run_id, page_no, wait_no=wait_no + 1)
        return "deferred: queue full"
    try:
        if await services.credits.exhausted():
            return await pause_for_credits(services, run_id)
        return await _fetch_and_fan_out(ctx, run, page_no)
    except OutOfCreditsError:
        return await pause_for_credits(services, run_id)
    except PermanentError as exc:
        await _fail(services, run_id, f"search page {page_no} refused: {exc}")
        return "failed"
    except TransientError as exc:
        retry = ctx["retry"].next_step(exc, ctx.get("job_try", 1))
        if retry is not None:
            raise retry from exc
        await _fail(services, run_id, f"search page {page_no} kept failing: {exc}; resume to continue")
        return "failed"


async def _fetch_and_fan_out(ctx: WorkerContext, run: dict[str, Any], page_no: int) -> str:
    services, settings, run_id = ctx["services"], ctx["settings"], str(run["_id"])
    state = run["search"]
    await ctx["limiter"].acquire("search")
    try:
        page = await ctx["client"].search(
            json.loads(run["query_json"]),
            after=state["cursor"],
            items_per_page=settings.search_items_per_page,
        )
    except RateLimitedError as exc:
        pause_s = await ctx["limiter"].penalize("search", exc.retry_after_s or settings.default_retry_after_s)
        raise RateLimitedError(str(exc), retry_after_s=pause_s) from exc
    cap = run.get("max_profiles")
    room = None if cap is None else max(0, int(cap) - int(state["ids_seen"]))
    ids = page.ids if room is None else page.ids[:room]
    fresh, stored = await _fan_out(services, settings.freshness_ttl_s, run_id, page_no, ids)
    ids_seen = int(state["ids_seen"]) + len(ids)
    exhausted = page.next_after is None or (cap is not None and ids_seen >= int(cap))
    advanced = await services.store.runs.advance_search(
        run_id,
        page_no,
        {
            "search.cursor": page.next_after,
            "search.pages_fetched": page_no + 1,
            "search.total_results": page.total_results,
            "search.ids_seen": ids_seen,
            "search.enqueued": int(state["enqueued"]) + stored,
            "search.skipped_fresh": int(state["skipped_fresh"]) + fresh,
            "search.exhausted": exhausted,
            "inputs_complete": exhausted,
            "accepted": ids_seen,
        },
    )
    if not advanced:
        return "stale: page recorded by another job"
    if exhausted:
        await _finalize(services, run_id, await services.store.runs.get(run_id) or run)
    else:
        await enqueue_page(services, run_id, page_no + 1)
    await feed(services)
    return f"page {page_no}: {len(ids)} ids, {stored} to collect, {fresh} fresh"


async def _fan_out(
    services: Services, ttl_s: float, run_id: str, page_no: int, ids: list[int]
) -> tuple[int, int]:
    """Count fresh profiles as skipped and store the rest as the run's input chunk for this page,
    for the feeder to enqueue. Returns (fresh, stored)."""
    fresh = await services.store.employees.fresh_ids(ids, synced_since=utcnow() - timedelta(seconds=ttl_s))
    wanted = [f"id:{i}" for i in ids if i not in fresh]
    await services.progress.record_many(run_id, [(f"id:{i}", "skipped_fresh") for i in sorted(fresh)])
    await services.store.runs.save_inputs(run_id, [wanted], first_seq=page_no)
    return len(fresh), len(wanted)


async def _backlog(services: Services, run_id: str, run: dict[str, Any]) -> int:
    """Ids this run has found but not yet finished: the next page waits while this is large."""
    processed = (await services.progress.counts(run_id)).get("processed", 0)
    return int(run["search"]["ids_seen"]) - processed


async def _finalize(services: Services, run_id: str, run: dict[str, Any]) -> None:
    """The last page is in: publish the run's size so the last collect job can close it."""
    accepted = int(run["search"]["ids_seen"])
    processed, _ = await services.progress.set_accepted(run_id, accepted)
    await finish_if_complete(services, run_id, processed, accepted)


async def _fail(services: Services, run_id: str, reason: str) -> None:
    log.warning("search.run_failed", reason=reason)
    await services.store.runs.transition(
        run_id,
        [RunState.RUNNING.value],
        {"state": RunState.FAILED.value, "finished_at": utcnow(), "error": reason},
    )
