"""The data-request job: one per ledger row. It submits, polls (deferring itself), ingests, settles.

Each run of the job moves its row one step along `DataRequestState` and, while the upstream is
still working, asks the queue to run it again later (capped, jittered backoff: a deferred job,
not a sleep loop, so a worker's slots stay free and a killed worker loses nothing):

- planned: write `submitting`, then POST (a bulk slot). The POST is the billing event and is
  never sent twice: an answer proving nothing was created (429, 5xx, 402, never sent) moves the
  row back to planned; a POST without a usable answer, or a row found still `submitting` (its
  worker died between the POST and the ledger write), becomes `unknown` and is surfaced.
- submitted: poll the file list (a bulk slot). 202, a timeout, a connection error or a 5xx all
  mean "still pending" (a billed request must not be lost); 402 pauses the run; past
  BULK_READY_DEADLINE_S the request fails with that reason.
- ready: ingest the files from the checkpoint (`jobs.bulk_ingest`), then settle the items.
"""

from __future__ import annotations

import asyncio
import json
import random

import structlog

from config.logging import redact_text
from jobs.bulk_chain import ES_DSL, employee_ids, fail_run, row_items, settle
from jobs.bulk_ingest import ingest
from jobs.control import pause_for_credits
from worker.errors import (
    DataRequestConflictError,
    DataRequestNotFoundError,
    NoMatchingIdsError,
    OutOfCreditsError,
    PermanentError,
    RateLimitedError,
    RetryJob,
    StoreUnavailableError,
    SubmitOutcomeUnknownError,
    TransientError,
    UpstreamUnavailableError,
)
from worker.run_model import DATA_REQUEST_FINAL, DataRequest, DataRequestState, Run, RunState, utcnow
from worker.runtime import Services, WorkerContext

log = structlog.get_logger("employee_sync.bulk")

STOPPED = "skipped: run not running"
S = DataRequestState
_ID_SAVE_TRIES = 4  # the request id is worth a few quick tries: without it the row is `unknown`


async def bulk_request(ctx: WorkerContext, run_id: str, row_id: str) -> str:
    services = ctx["services"]
    structlog.contextvars.bind_contextvars(data_request=row_id)
    try:
        run = await services.store.runs.get(run_id)
        row = await services.store.ledger.get(row_id)
        if run is None or row is None:
            return "stale: no such run or data request"
        if row.state in DATA_REQUEST_FINAL:
            return await settle(services, run, row)
        if run.state is not RunState.RUNNING:
            return STOPPED  # resume queues the job again; a cancelled run's request is abandoned
        return await _step(ctx, run, row)
    except OutOfCreditsError:
        return await pause_for_credits(services, run_id)
    except TransientError as exc:  # our own stores away: retried until they are back
        retry = ctx["retry"].next_step(exc, min(ctx.get("job_try", 1), 16))
        raise (retry or RetryJob(ctx["settings"].retry_cap_s, str(exc))) from exc
    except PermanentError as exc:  # e.g. 401 or 400 on a download: retrying the same cannot help
        return await _fail_by_id(ctx, run_id, row_id, f"refused: {_reason(ctx, exc)}")
    except RetryJob:
        raise  # the job deferring itself (a poll, the next slice): not an error
    except Exception as exc:  # a bug: retried a few times (the request is billed), then failed
        log.exception("bulk.internal_error")
        attempt = ctx.get("job_try", 1)
        if attempt < ctx["settings"].max_tries:
            raise RetryJob(ctx["retry"].delay_s(attempt), f"internal error: {exc!r}") from exc
        return await _fail_by_id(ctx, run_id, row_id, f"internal error: {type(exc).__name__}: {exc}")


async def _fail_by_id(ctx: WorkerContext, run_id: str, row_id: str, reason: str) -> str:
    services = ctx["services"]
    run = await services.store.runs.get(run_id)
    row = await services.store.ledger.get(row_id)
    if run is None or row is None:
        return f"failed: {reason}"
    return await _failed(ctx, run, row, reason, fail_run_too=row.kind == ES_DSL)


async def _step(ctx: WorkerContext, run: Run, row: DataRequest) -> str:
    services = ctx["services"]
    if row.state is S.PLANNED:
        return await _submit(ctx, run, row)
    if row.state is S.SUBMITTING:
        reason = (
            "its worker stopped between the ledger write and the POST's answer: the data request "
            "may exist upstream and be billed; not resubmitted (check upstream, then re-run its ids)"
        )
        return await _unknown(services, run, row, reason)
    if row.state is S.SUBMITTED:
        ready = await _poll(ctx, run, row)
        if ready is not None:
            return ready
        row = await services.store.ledger.get(row.row_id) or row
    return await ingest(ctx, run, row)


async def _submit(ctx: WorkerContext, run: Run, row: DataRequest) -> str:
    services, client, limiter = ctx["services"], ctx["client"], ctx["limiter"]
    if await services.credits.exhausted():
        return await pause_for_credits(services, run.run_id)
    ids = [] if row.kind == ES_DSL else employee_ids(await row_items(services, row))
    await limiter.acquire("bulk")
    if not await services.store.ledger.begin_submit(row.row_id, utcnow()):
        return "stale: submitted by another job"
    try:
        if row.kind == ES_DSL:
            assert row.query_json is not None
            request_id = await client.submit_es_dsl(json.loads(row.query_json), limit=row.limit)
        else:
            request_id = await client.submit_id_file(ids)
    except SubmitOutcomeUnknownError as exc:
        return await _unknown(services, run, row, _reason(ctx, exc))
    except NoMatchingIdsError:
        await services.store.ledger.done(row.row_id)  # 404 at submit: nothing exists, nothing billed
        services.metrics.observe_bulk_state("done")
        return await settle(services, run, await _reread(services, row))
    except DataRequestConflictError as exc:
        return await _failed(ctx, run, row, f"409 {_reason(ctx, exc)}: not resubmitted", fail_run_too=False)
    except PermanentError as exc:
        if isinstance(exc, OutOfCreditsError):
            await services.store.ledger.not_submitted(row.row_id)  # a 402 creates nothing
            raise
        return await _failed(ctx, run, row, f"submit refused: {_reason(ctx, exc)}", fail_run_too=True)
    except RateLimitedError as exc:
        await services.store.ledger.not_submitted(row.row_id)
        pause_s = await limiter.penalize("bulk", exc.retry_after_s)
        raise RetryJob(pause_s, f"submit rate limited: {exc}") from exc
    except UpstreamUnavailableError as exc:  # answered 5xx, or never sent: nothing was created
        await services.store.ledger.not_submitted(row.row_id)
        raise RetryJob(ctx["retry"].delay_s(ctx.get("job_try", 1)), f"submit: {exc}") from exc
    await _save_request_id(services, row, request_id)
    services.metrics.observe_bulk_state("submitted")
    log.info("bulk.submitted", request_id=request_id, kind=row.kind, ids=len(ids))
    raise RetryJob(poll_delay_s(ctx, 0), "submitted: first poll")


async def _save_request_id(services: Services, row: DataRequest, request_id: str) -> None:
    for attempt in range(_ID_SAVE_TRIES):
        try:
            await services.store.ledger.submitted(row.row_id, request_id, utcnow())
            return
        except StoreUnavailableError:
            if attempt == _ID_SAVE_TRIES - 1:
                # The row stays `submitting`: its next run marks it unknown (the id is in the log).
                log.exception("bulk.request_id_not_saved", request_id=request_id)
                raise
            await asyncio.sleep(0.5 * 2**attempt)  # a few seconds at most, inside the job's deadline


async def _poll(ctx: WorkerContext, run: Run, row: DataRequest) -> str | None:
    """None: the files are listed (the row is ready now); else the job's answer."""
    services, settings, limiter = ctx["services"], ctx["settings"], ctx["limiter"]
    assert row.request_id is not None and row.submitted_at is not None
    waited_s = (utcnow() - row.submitted_at).total_seconds()
    if waited_s > settings.bulk_ready_deadline_s:
        limit_s = settings.bulk_ready_deadline_s
        reason = f"not ready {waited_s:.0f} s after its POST (BULK_READY_DEADLINE_S={limit_s:g})"
        return await _failed(ctx, run, row, reason, fail_run_too=False)
    await limiter.acquire("bulk")
    try:
        files = await ctx["client"].poll_files(row.request_id)
    except RateLimitedError as exc:
        services.metrics.observe_bulk_poll("rate_limited")
        pause_s = await limiter.penalize("bulk", exc.retry_after_s)
        raise RetryJob(pause_s, f"poll rate limited: {exc}") from exc
    except DataRequestNotFoundError as exc:
        return await _failed(
            ctx, run, row, f"unknown or expired upstream: {_reason(ctx, exc)}", fail_run_too=False
        )
    except OutOfCreditsError:
        raise
    except PermanentError as exc:  # 422 "matched too many ids", 400, 401
        return await _failed(ctx, run, row, f"files refused: {_reason(ctx, exc)}", fail_run_too=True)
    except UpstreamUnavailableError as exc:  # timeout, reset, 5xx: still pending, never failed
        services.metrics.observe_bulk_poll("error")
        await services.store.ledger.count_poll(row.row_id)
        raise RetryJob(poll_delay_s(ctx, row.polls + 1), f"poll: {exc}") from exc
    if files is None:
        services.metrics.observe_bulk_poll("pending")
        await services.store.ledger.count_poll(row.row_id)
        raise RetryJob(poll_delay_s(ctx, row.polls + 1), "not ready yet")
    await services.store.ledger.ready(row.row_id, files, utcnow())
    services.metrics.observe_bulk_poll("ready", time_to_ready_s=waited_s)
    services.metrics.observe_bulk_state("ready")
    log.info("bulk.ready", files=len(files), waited_s=round(waited_s, 1), polls=row.polls + 1)
    return None


def poll_delay_s(ctx: WorkerContext, polls: int) -> float:
    """Capped exponential backoff with jitter (half to full): polls of many requests spread out."""
    settings = ctx["settings"]
    ceiling = min(settings.bulk_poll_cap_s, settings.bulk_poll_first_s * 2 ** min(polls, 20))
    return random.uniform(ceiling / 2, ceiling)


async def _unknown(services: Services, run: Run, row: DataRequest, reason: str) -> str:
    await services.store.ledger.unknown(row.row_id, reason)
    services.metrics.observe_bulk_state("unknown")
    log.error("bulk.unknown", reason=reason)
    return await settle(services, run, await _reread(services, row))


async def _failed(ctx: WorkerContext, run: Run, row: DataRequest, reason: str, *, fail_run_too: bool) -> str:
    services = ctx["services"]
    await services.store.ledger.fail(row.row_id, reason)
    services.metrics.observe_bulk_state("failed")
    log.warning("bulk.failed", reason=reason)
    if fail_run_too:
        await fail_run(services, run.run_id, f"data request {row.row_id}: {reason}")
    return await settle(services, run, await _reread(services, row))


async def _reread(services: Services, row: DataRequest) -> DataRequest:
    return await services.store.ledger.get(row.row_id) or row


def _reason(ctx: WorkerContext, exc: Exception) -> str:
    return redact_text(str(exc) or type(exc).__name__, ctx["settings"].secrets())
