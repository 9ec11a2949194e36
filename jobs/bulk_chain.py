"""Bulk runs' shared pieces: queueing their jobs, the items of a data request, and settling one.

Used by the bulk jobs themselves, the producers and run control (resume, recover), so none of
them has to import the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from jobs.feeder import enqueue_items
from jobs.runs import finish_if_complete
from worker import keys
from worker.queue import JobSpec
from worker.run_model import DataRequest, DataRequestState, Outcome, Run, RunState, utcnow
from worker.runtime import Services
from worker.store.ledger import row_id_of

ID_FILE = "id_file"
ES_DSL = "es_dsl"


def id_file_fingerprint(ids: Sequence[int]) -> str:
    """What an id_file request asks for, whatever the order: the distinct ids, sorted."""
    text = ",".join(str(i) for i in sorted(set(ids)))
    return "id_file:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def es_dsl_fingerprint(query_json: str, limit: int | None) -> str:
    return "es_dsl:" + hashlib.sha256(f"{query_json}|{limit}".encode()).hexdigest()[:16]


def employee_ids(item_keys: Sequence[str]) -> list[int]:
    return [int(key.split(":", 1)[1]) for key in item_keys if key.startswith("id:")]


async def enqueue_requests(services: Services, rows: Sequence[DataRequest]) -> int:
    specs = [JobSpec(keys.bulk_request_job_id(row.row_id), (row.run_id, row.row_id)) for row in rows]
    added = await services.queue.enqueue_many(keys.JOB_QUEUE, keys.BULK_REQUEST_JOB, specs)
    return added.count(True)


async def enqueue_search_plan(services: Services, run_id: str) -> bool:
    spec = JobSpec(keys.bulk_search_job_id(run_id), (run_id,))
    return (await services.queue.enqueue_many(keys.JOB_QUEUE, keys.BULK_SEARCH_JOB, [spec], priority=True))[0]


async def plan_id_file(
    services: Services, run_id: str, seq: int, chunk_seqs: list[int], ids: list[int]
) -> DataRequest:
    """Add (once) the id_file data request for these stored chunks, and queue its job."""
    row = DataRequest(
        row_id=row_id_of(run_id, seq),
        run_id=run_id,
        seq=seq,
        kind=ID_FILE,
        fingerprint=id_file_fingerprint(ids),
        chunk_seqs=chunk_seqs,
    )
    stored = await services.store.ledger.plan(row)
    await enqueue_requests(services, [stored])
    return stored


async def row_items(services: Services, row: DataRequest) -> list[str]:
    """The run's item keys an id_file request asks for (its stored chunks)."""
    items: list[str] = []
    for seq in row.chunk_seqs:
        items += await services.store.runs.input_chunk(row.run_id, seq) or []
    return items


async def restart_bulk(services: Services, run: Run) -> int:
    """After a move to running (resume, recover): queue the job of every data request again.

    A row's job knows what to do from its state: submit a planned one, poll a submitted one,
    ingest from the checkpoint, or settle a final one (count its items again if Redis lost them).
    """
    if run.bulk is not None and not run.bulk.planned and run.bulk.source_kind == "search":
        await enqueue_search_plan(services, run.run_id)
    return await enqueue_requests(services, await services.store.ledger.of_run(run.run_id))


async def settle(services: Services, run: Run, row: DataRequest) -> str:
    """Give every item of a final data request its outcome (idempotent: counted items keep theirs).

    Done: ids requested but not delivered are `not_found` (the API simply leaves them out; no
    tombstone is inferred from absence), or collected one by one when BULK_MISSING_VIA_COLLECT.
    Failed or unknown: the items not delivered are `failed`, with the row's reason in status.
    An es_dsl request has no list of ids: done, the run's size becomes what was delivered;
    failed, the run fails with the reason.
    """
    run_id = run.run_id
    if row.kind == ES_DSL:
        if row.state is DataRequestState.DONE:
            processed = (await services.progress.counts(run_id)).get("processed", 0)
            await services.store.runs.publish_size(run_id, processed)
            await finish_if_complete(
                services, run_id, *await services.progress.set_accepted(run_id, processed)
            )
            return "done"
        await fail_run(services, run_id, f"data request {row.row_id} {row.state.value}: {row.error}")
        return f"{row.state.value}: {row.error}"
    items = await row_items(services, row)
    counted = await services.progress.counted(run_id, items)
    missing = [key for key, done in zip(items, counted, strict=True) if not done]
    if row.state is DataRequestState.DONE and services.settings.bulk_missing_via_collect and missing:
        await enqueue_items(services, run_id, missing)
        return f"done: {len(missing)} not delivered, sent to collect"
    outcome = Outcome.NOT_FOUND if row.state is DataRequestState.DONE else Outcome.FAILED
    if missing:
        processed, accepted = await services.progress.record_many(run_id, [(k, outcome) for k in missing])
        await finish_if_complete(services, run_id, processed, accepted)
    detail = "" if row.error is None else f" ({row.error})"
    return f"{row.state.value}: {len(missing)} {outcome.value}{detail}"


async def fail_run(services: Services, run_id: str, reason: str) -> None:
    await services.store.runs.move(run_id, RunState.FAILED, finished_at=utcnow(), error=reason)
