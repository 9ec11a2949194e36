"""Streamed ingest of a ready data request: download → FileDecoder → batched sink writes → checkpoint.

Memory stays flat: a file is never held whole (the decoder keeps one partial record, a batch
holds BULK_INGEST_BATCH profiles). After each batch is written to the mirror *and* counted in
the run, the ledger records how many records of the file are done; a worker killed mid-file
resumes there with a fresh download that skips (without parsing) what was done, a file marked
done is never downloaded again, and a profile is counted once (counting is idempotent, and the
sink makes a re-written batch harmless).

A job has a deadline (JOB_TIMEOUT_S), so a file that takes longer is ingested in slices: at a
batch boundary past half the job's time the job checkpoints and runs again from there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, cast

import structlog

from jobs.bulk_chain import ES_DSL, fail_run, row_items, settle
from jobs.runs import finish_if_complete
from worker.bulk_files import FileDecoder
from worker.errors import (
    CorruptFileError,
    DataRequestNotFoundError,
    RateLimitedError,
    RetryJob,
    UpstreamUnavailableError,
)
from worker.run_model import DataRequest, Run, utcnow
from worker.runtime import WorkerContext

log = structlog.get_logger("employee_sync.bulk_ingest")

# Of JOB_TIMEOUT_S: no new file is started after the first fraction; a file is cut (checkpoint, and
# the next job run downloads it again, skipping what is done) only past the second. On a real
# MongoDB a 10,000-record file takes a second or two, so files are cut only when the store is slow.
NEW_FILE_FRACTION = 0.35
CUT_FILE_FRACTION = 0.7
CONTINUE = "continue"


async def ingest(ctx: WorkerContext, run: Run, row: DataRequest) -> str:
    services = ctx["services"]
    started, job_s = time.monotonic(), ctx["settings"].job_timeout_s
    wanted = None if row.kind == ES_DSL else set(await row_items(services, row))
    for index, name in enumerate(row.files):
        if index in row.files_done:
            continue
        if time.monotonic() > started + job_s * NEW_FILE_FRACTION:
            raise RetryJob(0.05, f"file {index}: next file in a fresh job run")
        result = await _ingest_file(ctx, run, row, index, name, wanted, started + job_s * CUT_FILE_FRACTION)
        if result == CONTINUE:
            raise RetryJob(0.05, f"file {index}: continuing from its checkpoint")
        if result != "done":
            return result
    await services.store.ledger.done(row.row_id)
    services.metrics.observe_bulk_state("done")
    row = await services.store.ledger.get(row.row_id) or row
    log.info("bulk.ingested", files=len(row.files), records=row.records_ingested)
    return await settle(services, run, row)


async def _ingest_file(
    ctx: WorkerContext,
    run: Run,
    row: DataRequest,
    index: int,
    name: str,
    wanted: set[str] | None,
    deadline: float,
) -> str:
    services, settings = ctx["services"], ctx["settings"]
    assert row.request_id is not None
    position = row.file_records.get(index, 0)
    decoder = FileDecoder(skip_records=position)
    batch: list[dict[str, Any]] = []
    read = 0
    await ctx["limiter"].acquire("bulk")
    await services.store.ledger.count_download(row.row_id, index)
    fetched_at = utcnow()  # the profiles are as of this download
    try:
        chunks = cast(AsyncGenerator[bytes], ctx["client"].download_file(row.request_id, name))
        async with contextlib.aclosing(chunks):
            async for chunk in chunks:
                read += len(chunk)
                for record in decoder.feed(chunk):
                    batch.append(record)
                    if len(batch) >= settings.bulk_ingest_batch:
                        position = await _write(
                            ctx, run, row, index, batch, position, read, fetched_at, wanted
                        )
                        batch, read = [], 0
                        if time.monotonic() > deadline:
                            return CONTINUE
        batch.extend(decoder.finish())
    except CorruptFileError as exc:
        return await _corrupt(ctx, run, row, index, position, exc)
    except DataRequestNotFoundError as exc:
        return await _give_up(ctx, run, row, f"file {name} unknown or expired upstream: {exc}")
    except (UpstreamUnavailableError, RateLimitedError) as exc:
        return await _download_error(ctx, run, row, index, position, exc)
    position = await _write(ctx, run, row, index, batch, position, 0, fetched_at, wanted)
    await services.store.ledger.file_done(row.row_id, index, position, read)
    services.metrics.observe_bulk_ingest(0, read)
    return "done"


async def _write(
    ctx: WorkerContext,
    run: Run,
    row: DataRequest,
    index: int,
    batch: Sequence[dict[str, Any]],
    position: int,
    read: int,
    fetched_at: Any,
    wanted: set[str] | None,
) -> int:
    """Write a batch to the mirror, count it in the run, then move the file's checkpoint."""
    services = ctx["services"]
    if batch:
        outcomes = await services.store.employees.upsert_many(batch, run_id=run.run_id, fetched_at=fetched_at)
        for _, outcome in outcomes:
            services.metrics.observe_sink(outcome.value)
        counted = [(f"id:{i}", o.value) for i, o in outcomes]
        if (
            wanted is not None
        ):  # an id_file request delivers only what it asked for; anything else is not ours
            counted = [(key, outcome) for key, outcome in counted if key in wanted]
        if counted:
            processed, accepted = await services.progress.record_many(run.run_id, counted)
            await finish_if_complete(services, run.run_id, processed, accepted)
    position += len(batch)
    if batch or read:
        await services.store.ledger.checkpoint(row.row_id, index, position, len(batch), read)
        services.metrics.observe_bulk_ingest(len(batch), read)
    return position


async def _corrupt(
    ctx: WorkerContext, run: Run, row: DataRequest, index: int, position: int, exc: CorruptFileError
) -> str:
    services, limit = ctx["services"], ctx["settings"].bulk_file_max_downloads
    bad = await services.store.ledger.count_corrupt(row.row_id, index)
    if bad >= limit:
        reason = (
            f"file {row.files[index]} did not decode in {bad} downloads "
            f"(BULK_FILE_MAX_DOWNLOADS={limit}): {exc}"
        )
        return await _give_up(ctx, run, row, reason)
    log.warning("bulk.corrupt_file", file_index=index, downloads_bad=bad, resume_at=position, error=str(exc))
    raise RetryJob(
        ctx["retry"].delay_s(bad), f"file {index} corrupt; downloading again from record {position}"
    )


async def _download_error(
    ctx: WorkerContext, run: Run, row: DataRequest, index: int, position: int, exc: Exception
) -> str:
    """5xx, reset, timeout or 429 mid-download: what was written is checkpointed; try again."""
    services, settings = ctx["services"], ctx["settings"]
    if isinstance(exc, RateLimitedError):
        pause_s = await ctx["limiter"].penalize("bulk", exc.retry_after_s)
        raise RetryJob(pause_s, f"download rate limited: {exc}") from exc
    errors = await services.store.ledger.count_download_error(row.row_id)
    if errors >= settings.max_tries * len(row.files):
        return await _give_up(ctx, run, row, f"downloads kept failing ({errors} errors): {exc}")
    log.warning("bulk.download_error", file_index=index, resume_at=position, error=str(exc))
    raise RetryJob(ctx["retry"].delay_s(min(errors, 16)), f"download of file {index}: {exc}") from exc


async def _give_up(ctx: WorkerContext, run: Run, row: DataRequest, reason: str) -> str:
    services = ctx["services"]
    await services.store.ledger.fail(row.row_id, reason)
    services.metrics.observe_bulk_state("failed")
    log.warning("bulk.failed", reason=reason)
    if row.kind == ES_DSL:
        await fail_run(services, run.run_id, f"data request {row.row_id}: {reason}")
    return await settle(services, run, await services.store.ledger.get(row.row_id) or row)
