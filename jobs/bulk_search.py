"""A search run by bulk: count first, then one es_dsl data request, or ids by pages then id_file ones.

The API answers an es_dsl data request matching over 10,000 profiles with a 422 only *after*
the POST (which is billed), so the job counts the matches first with a one-item search page
(`x-total-results`). Up to BULK_REQUEST_IDS (and `max_profiles`) → one es_dsl request with that
`limit`. More → the ids are collected with search pages (stored with the run like a search run's
pages, fresh ones skipped), then grouped into id_file requests of at most BULK_REQUEST_IDS.
The job pages within half its deadline and runs again to go on; the run's search cursor (a
compare-and-set per page) makes a page job that ran twice harmless.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import structlog

from config.logging import redact_text
from jobs.bulk_chain import (
    ES_DSL,
    enqueue_requests,
    enqueue_search_plan,
    es_dsl_fingerprint,
    fail_run,
    plan_id_file,
)
from jobs.control import pause_for_credits
from jobs.runs import create_run, finish_if_complete
from jobs.search import advanced_cursor
from jobs.search_chain import enqueue_page
from worker.errors import OutOfCreditsError, PermanentError, RateLimitedError, RetryJob, TransientError
from worker.run_model import BulkPlan, DataRequest, Outcome, Run, RunKind, RunState, utcnow
from worker.runtime import Services, WorkerContext
from worker.store.ledger import row_id_of

log = structlog.get_logger("employee_sync.bulk_search")

STOPPED = "skipped: run not running"


async def start_bulk_search_run(
    services: Services,
    body: dict[str, Any],
    *,
    max_profiles: int | None,
    source: str,
    auto: bool = False,
    matched: int | None = None,
) -> str:
    """Create a bulk search run (the body already validated) and queue its planning job.

    `auto`: the job decides after its count (below BULK_MIN_ITEMS the run becomes a plain search
    run, collected profile by profile). `matched`: a count the caller already made (not redone)."""
    run = await create_run(services, RunKind.SEARCH, source)
    plan = BulkPlan(source_kind="search", auto=auto, matched=matched)
    await services.store.runs.start_bulk(
        run.run_id, plan, query_json=json.dumps(body, sort_keys=True), max_profiles=max_profiles
    )
    await services.store.runs.move(run.run_id, RunState.RUNNING, only_from=frozenset({RunState.ENQUEUEING}))
    await enqueue_search_plan(services, run.run_id)
    return run.run_id


async def bulk_search(ctx: WorkerContext, run_id: str) -> str:
    services = ctx["services"]
    try:
        run = await services.store.runs.get(run_id)
        if run is None or run.bulk is None or run.query_json is None:
            return "stale: no such bulk search run"
        if run.state is not RunState.RUNNING:
            return STOPPED
        if run.bulk.planned:
            queued = await enqueue_requests(services, await services.store.ledger.of_run(run_id))
            return f"planned: {queued} queued"
        if await services.credits.exhausted():
            return await pause_for_credits(services, run_id)
        return await _plan(ctx, run)
    except OutOfCreditsError:
        return await pause_for_credits(services, run_id)
    except RateLimitedError as exc:
        pause_s = await ctx["limiter"].penalize("search", exc.retry_after_s)
        raise RetryJob(pause_s, f"search rate limited: {exc}") from exc
    except PermanentError as exc:
        reason = redact_text(f"search refused: {exc}", ctx["settings"].secrets())
        await fail_run(services, run_id, reason)
        return "failed"
    except TransientError as exc:
        retry = ctx["retry"].next_step(exc, min(ctx.get("job_try", 1), 16))
        raise (retry or RetryJob(ctx["settings"].retry_cap_s, str(exc))) from exc


async def _plan(ctx: WorkerContext, run: Run) -> str:
    services, settings = ctx["services"], ctx["settings"]
    assert run.bulk is not None and run.query_json is not None
    body = json.loads(run.query_json)
    matched = run.bulk.matched
    if matched is None:
        await ctx["limiter"].acquire("search")
        matched = await ctx["client"].count(body)
        await services.store.runs.record_bulk_plan(run.run_id, requests=0, planned=False, matched=matched)
    wanted = matched if run.max_profiles is None else min(matched, run.max_profiles)
    if run.bulk.auto and wanted < settings.bulk_min_items:
        if await services.store.runs.bulk_search_to_collect(run.run_id):
            await enqueue_page(services, run.run_id, 0)
        return f"planned: {wanted} < BULK_MIN_ITEMS {settings.bulk_min_items}: collect"
    if wanted == 0:
        await _publish(services, run.run_id, 0, requests=0, matched=matched, split=False)
        return "planned: nothing matches"
    if wanted <= settings.bulk_request_ids:
        row = DataRequest(
            row_id=row_id_of(run.run_id, 0),
            run_id=run.run_id,
            seq=0,
            kind=ES_DSL,
            fingerprint=es_dsl_fingerprint(run.query_json, wanted),
            query_json=run.query_json,
            limit=wanted,
        )
        stored = await services.store.ledger.plan(row)
        await _publish(services, run.run_id, wanted, requests=1, matched=matched, split=False)
        await enqueue_requests(services, [stored])
        return f"planned: one es_dsl request for {wanted} of {matched}"
    return await _page_then_split(ctx, run, body, matched)


async def _page_then_split(ctx: WorkerContext, run: Run, body: dict[str, Any], matched: int) -> str:
    """Over one request's worth: collect the ids by search pages, then plan id_file requests."""
    services = ctx["services"]
    deadline = time.monotonic() + ctx["settings"].job_timeout_s * 0.5
    current = run
    while current.search is not None and not current.search.exhausted:
        if time.monotonic() > deadline:
            raise RetryJob(0.05, f"paging ids: continuing at page {current.search.next_page}")
        await _one_page(ctx, current, body)
        current = await services.store.runs.get(run.run_id) or current
        if current.state is not RunState.RUNNING:
            return STOPPED
    assert current.search is not None
    groups = _groups(await services.store.runs.chunk_sizes(run.run_id), ctx["settings"].bulk_request_ids)
    for seq, chunk_seqs in enumerate(groups):
        ids = [
            int(k[3:]) for s in chunk_seqs for k in await services.store.runs.input_chunk(run.run_id, s) or []
        ]
        await plan_id_file(services, run.run_id, seq, chunk_seqs, ids)
    await _publish(
        services, run.run_id, current.search.ids_seen, requests=len(groups), matched=matched, split=True
    )
    return f"planned: {len(groups)} id_file requests for {current.search.ids_seen} ids"


async def _one_page(ctx: WorkerContext, run: Run, body: dict[str, Any]) -> None:
    services, settings = ctx["services"], ctx["settings"]
    assert run.search is not None
    state, page_no = run.search, run.search.next_page
    await ctx["limiter"].acquire("search")
    page = await ctx["client"].search(body, after=state.cursor, items_per_page=settings.search_items_per_page)
    keys_on_page = list(dict.fromkeys(f"id:{i}" for i in page.ids))
    seen = await services.store.runs.seen_elsewhere(run.run_id, page_no, keys_on_page)
    new = [k for k in keys_on_page if k not in seen]
    if run.max_profiles is not None:
        new = new[: max(0, run.max_profiles - state.ids_seen)]
    ids = [int(k[3:]) for k in new]
    fresh_ids = await services.store.employees.fresh_ids(
        ids, synced_since=utcnow() - timedelta(seconds=settings.freshness_ttl_s)
    )
    fresh = [f"id:{i}" for i in ids if i in fresh_ids]
    items = [f"id:{i}" for i in ids if i not in fresh_ids]
    items, fresh = await services.store.runs.save_page_once(run.run_id, page_no, items, fresh)
    advanced = advanced_cursor(state, page, page_no, run.max_profiles, len(items), len(fresh))
    await services.progress.record_many(run.run_id, [(k, Outcome.SKIPPED_FRESH) for k in fresh])
    await services.store.runs.advance_search(run.run_id, page_no, advanced)


def _groups(chunk_sizes: list[tuple[int, int]], per_request: int) -> list[list[int]]:
    """Consecutive chunks grouped into requests of at most `per_request` ids (deterministic)."""
    groups: list[list[int]] = []
    size = 0
    for seq, count in chunk_sizes:
        if count == 0:
            continue
        if groups and size + count <= per_request:
            groups[-1].append(seq)
            size += count
        else:
            groups.append([seq])
            size = count
    return groups


async def _publish(
    services: Services, run_id: str, accepted: int, *, requests: int, matched: int, split: bool
) -> None:
    await services.store.runs.publish_size(run_id, accepted)
    await services.store.runs.record_bulk_plan(
        run_id, requests=requests, planned=True, matched=matched, split=split
    )
    processed, _ = await services.progress.set_accepted(run_id, accepted)
    await finish_if_complete(services, run_id, processed, accepted)
    log.info("bulk_search.planned", accepted=accepted, requests=requests, matched=matched, split=split)
