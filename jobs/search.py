"""Search runs: an ES-DSL query → pages of employee ids (one job per page) → collect jobs.

The run holds the query and a `SearchCursor`. Each page job draws a *search* slot from the global
limiter, stores the page's ids with the run (first writer wins, so a page fetched twice counts
once), drops ids an earlier page already had (a profile updated mid-paging moves behind the
cursor and shows up again), counts ids synced within the freshness TTL as skipped (kept in the
chunk, so a recovery can count them again), then advances the run with a compare-and-set on
`next_page`. Any failure of our own stores at any step is retried; the chain never just ends.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any

import structlog

from config.logging import redact_text
from jobs.control import pause_for_credits
from jobs.feeder import feed
from jobs.runs import create_run, finish_if_complete
from jobs.search_chain import enqueue_page
from worker.client import SearchPage
from worker.errors import OutOfCreditsError, PermanentError, RateLimitedError, TransientError
from worker.run_model import Outcome, Run, RunKind, RunState, SearchCursor, utcnow
from worker.runtime import Services, WorkerContext

log = structlog.get_logger("employee_sync.search")


async def start_search_run(
    services: Services, body: dict[str, Any], *, max_profiles: int | None, source: str
) -> str:
    """Create a search run and enqueue its first page. The body must already be validated."""
    run = await create_run(services, RunKind.SEARCH, source)
    await services.store.runs.start_search(run.run_id, json.dumps(body, sort_keys=True), max_profiles)
    await enqueue_page(services, run.run_id, 0)
    return run.run_id


async def search_page(ctx: WorkerContext, run_id: str, page_no: int, wait_no: int = 0) -> str:
    """Fetch one page of a search run and enqueue its collect jobs; then chain the next page."""
    services = ctx["services"]
    structlog.contextvars.bind_contextvars(page=page_no)
    try:
        return await _page(ctx, run_id, page_no, wait_no)
    except OutOfCreditsError:
        return await _or_retry(ctx, pause_for_credits(services, run_id))
    except PermanentError as exc:
        await _or_retry(ctx, _fail(ctx, run_id, f"search page {page_no} refused: {exc}"))
        return Outcome.FAILED.value
    except TransientError as exc:
        retry = ctx["retry"].next_step(exc, ctx.get("job_try", 1))
        if retry is not None:
            raise retry from exc
        await _or_retry(
            ctx, _fail(ctx, run_id, f"search page {page_no} kept failing: {exc}; resume to continue")
        )
        return Outcome.FAILED.value


async def _or_retry[T](ctx: WorkerContext, step: Awaitable[T]) -> T:
    """Run a handler's own store call; if our stores are away, retry the whole page job later."""
    try:
        return await step
    except TransientError as exc:
        retry = ctx["retry"].next_step(exc, 1)  # store outages: always retried
        if retry is None:
            raise
        raise retry from exc


async def _page(ctx: WorkerContext, run_id: str, page_no: int, wait_no: int) -> str:
    services = ctx["services"]
    run = await services.store.runs.get(run_id)
    if run is None or run.state is not RunState.RUNNING or run.search is None:
        return "stale: run not running"
    if run.search.exhausted:
        await _finalize(services, run)
        return "stale: search already complete"
    if page_no != run.search.next_page:
        # A duplicate or late job: make sure the chain goes on from where the run really is.
        await enqueue_page(services, run_id, run.search.next_page)
        return f"stale: run is at page {run.search.next_page}"
    if await _backlog(services, run) > ctx["settings"].search_max_queued:
        await enqueue_page(services, run_id, page_no, wait_no=wait_no + 1)
        return "deferred: queue full"
    if await services.credits.exhausted():
        return await pause_for_credits(services, run_id)
    return await _fetch_and_fan_out(ctx, run, page_no)


async def _fetch_and_fan_out(ctx: WorkerContext, run: Run, page_no: int) -> str:
    services, settings, run_id = ctx["services"], ctx["settings"], run.run_id
    assert run.search is not None and run.query_json is not None
    state = run.search
    await ctx["limiter"].acquire("search")
    try:
        page = await ctx["client"].search(
            json.loads(run.query_json), after=state.cursor, items_per_page=settings.search_items_per_page
        )
    except RateLimitedError as exc:
        pause_s = await ctx["limiter"].penalize("search", exc.retry_after_s)
        raise RateLimitedError(str(exc), retry_after_s=pause_s) from exc
    keys_on_page = list(dict.fromkeys(f"id:{i}" for i in page.ids))  # distinct, in page order
    seen = await services.store.runs.seen_elsewhere(run_id, page_no, keys_on_page)
    new = [k for k in keys_on_page if k not in seen]
    room = None if run.max_profiles is None else max(0, run.max_profiles - state.ids_seen)
    new = new if room is None else new[:room]
    wanted, fresh = await _stored_page(services, settings.freshness_ttl_s, run_id, page_no, new)
    advanced = advanced_cursor(state, page, page_no, run.max_profiles, len(wanted), len(fresh))
    exhausted = advanced.exhausted
    # Fresh ids are counted before the advance (counting is idempotent): a crash in between
    # re-runs this job, which then finds the page recorded and must not have to count them.
    await services.progress.record_many(run_id, [(k, Outcome.SKIPPED_FRESH) for k in fresh])
    if not await services.store.runs.advance_search(run_id, page_no, advanced):
        return "stale: page recorded by another job"
    if exhausted:
        await _finalize(services, await services.store.runs.get(run_id) or run)
    else:
        await enqueue_page(services, run_id, page_no + 1)
    await feed(services)
    return f"page {page_no}: {len(page.ids)} ids, {len(wanted)} to collect, {len(fresh)} fresh"


def advanced_cursor(
    state: SearchCursor, page: SearchPage, page_no: int, max_profiles: int | None, stored: int, fresh: int
) -> SearchCursor:
    """The run's search cursor once page `page_no` (`stored` ids to collect, `fresh` skipped) is in."""
    ids_seen = state.ids_seen + stored + fresh
    return SearchCursor(
        next_page=page_no + 1,
        cursor=page.next_after,
        pages_fetched=page_no + 1,
        total_results=page.total_results,
        ids_seen=ids_seen,
        enqueued=state.enqueued + stored,
        skipped_fresh=state.skipped_fresh + fresh,
        exhausted=page.next_after is None or (max_profiles is not None and ids_seen >= max_profiles),
    )


async def _stored_page(
    services: Services, ttl_s: float, run_id: str, page_no: int, new: list[str]
) -> tuple[list[str], list[str]]:
    """Split the page's new ids into to-collect and fresh, and store them as the page's chunk.
    If the page was stored already (its job ran twice), the stored split wins."""
    ids = [int(k.split(":", 1)[1]) for k in new]
    fresh_ids = await services.store.employees.fresh_ids(
        ids, synced_since=utcnow() - timedelta(seconds=ttl_s)
    )
    fresh = [f"id:{i}" for i in ids if i in fresh_ids]
    wanted = [f"id:{i}" for i in ids if i not in fresh_ids]
    return await services.store.runs.save_page_once(run_id, page_no, wanted, fresh)


async def _backlog(services: Services, run: Run) -> int:
    """Ids this run has found but not yet finished: the next page waits while this is large."""
    processed = (await services.progress.counts(run.run_id)).get("processed", 0)
    return (run.search.ids_seen if run.search else 0) - processed


async def _finalize(services: Services, run: Run) -> None:
    """The last page is in: publish the run's size so the last collect job can close it."""
    accepted = run.search.ids_seen if run.search else run.accepted
    processed, _ = await services.progress.set_accepted(run.run_id, accepted)
    await finish_if_complete(services, run.run_id, processed, accepted)


async def _fail(ctx: WorkerContext, run_id: str, reason: str) -> None:
    reason = redact_text(reason, ctx["settings"].secrets())
    log.warning("search.run_failed", reason=reason)
    await ctx["services"].store.runs.move(run_id, RunState.FAILED, finished_at=utcnow(), error=reason)
