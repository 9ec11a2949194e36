"""Producers: turn input lines into a run, streaming, and store its inputs in chunks with the run.

Nothing is enqueued here directly: the feeder moves stored inputs into the bounded queue window, so
accepting a million items costs MongoDB a few hundred chunk documents and Redis nothing more than
the window. Everything accepted is in MongoDB before the call returns: nothing accepted is lost.

A producer that fails half-way (MongoDB away, a killed process) does not publish the run's size:
the run stays unfinished with what it stored, and `recover` (or the fleet's reconciler) completes
it from the stored chunks. The caller sees the failure; a retried call makes a second run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from jobs.bulk_chain import employee_ids, plan_id_file
from jobs.bulk_search import start_bulk_search_run
from jobs.feeder import feed
from jobs.inputs import InputKind, Rejected, parse_lines
from jobs.plan_inputs import plan_lines
from jobs.runs import create_run, finish_if_complete
from jobs.search import start_search_run
from jobs.search_input import validate_search_body
from worker.errors import InputError
from worker.run_model import BulkPlan, Outcome, Rejection, RunKind, RunState, SyncOrigin, utcnow
from worker.runtime import Services

REJECTED_SAMPLE = 100
_STARTABLE = frozenset({RunState.ENQUEUEING})


@dataclass(slots=True)
class Receipt:
    run_id: str
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    rejected_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "accepted": self.accepted,
            "rejected": self.rejected_count,
            "duplicates": self.duplicates,
        }


@dataclass(frozen=True, slots=True)
class Intake:
    """How a producer treats what it accepts (the planner's choice, `jobs.planner`).

    `bulk`: the run's items go by id_file data requests, one per stored chunk (chunks of
    BULK_REQUEST_IDS), instead of collect jobs. `skip_fresh`: items synced within FRESHNESS_TTL_S
    are kept in their chunk as fresh and counted `skipped_fresh` (no credit spent)."""

    bulk: bool = False
    skip_fresh: bool = False


class _Batcher:
    def __init__(self, services: Services, receipt: Receipt, intake: Intake) -> None:
        self.services = services
        self.receipt = receipt
        self.intake = intake
        self.pending: list[str] = []
        self.seq = 0
        self.requests = 0
        settings = services.settings
        self.chunk_size = settings.bulk_request_ids if intake.bulk else settings.input_chunk_size

    async def flush(self) -> None:
        if not self.pending:
            return
        run_id, batch = self.receipt.run_id, self.pending
        items, fresh = await self._split_fresh(batch)
        await self.services.store.runs.save_inputs(run_id, self.seq, items, fresh)
        if fresh:
            await self.services.progress.record_many(run_id, [(k, Outcome.SKIPPED_FRESH) for k in fresh])
        self.seq += 1
        self.receipt.accepted += len(batch)
        self.pending = []
        if self.seq == 1:
            # Let workers start on the first chunk while a large input is still being read.
            await self.services.store.runs.move(run_id, RunState.RUNNING, only_from=_STARTABLE)
            await feed(self.services)
        if self.intake.bulk and items:
            self.requests += 1
            await plan_id_file(self.services, run_id, self.seq - 1, [self.seq - 1], employee_ids(items))

    async def _split_fresh(self, batch: list[str]) -> tuple[list[str], list[str]]:
        if not self.intake.skip_fresh:
            return batch, []
        ttl_s = self.services.settings.freshness_ttl_s
        fresh_ids = await self.services.store.employees.fresh_ids(
            employee_ids(batch), synced_since=utcnow() - timedelta(seconds=ttl_s)
        )
        fresh = [k for k in batch if k.startswith("id:") and int(k[3:]) in fresh_ids]
        gone = set(fresh)
        return [k for k in batch if k not in gone], fresh


async def enqueue_lines(
    services: Services,
    lines: Iterable[tuple[int, str | InputError]],
    kind: InputKind,
    *,
    source: str,
    on_reject: Callable[[Rejected], None] | None = None,
    keep_rejected: int = REJECTED_SAMPLE,
    intake: Intake = Intake(),
    sync: SyncOrigin | None = None,
) -> Receipt:
    """Create a run from numbered input lines and enqueue one collect job per distinct item
    (or, with `intake.bulk`, one data request per chunk). `sync`: the sync tick it is for."""
    if intake.bulk and kind != "ids":
        raise InputError("bulk collect takes employee ids; names stay on collect")
    run = await create_run(services, RunKind(kind), source, sync=sync)
    if intake.bulk:
        await services.store.runs.start_bulk(run.run_id, BulkPlan(source_kind="ids"))
    receipt = Receipt(run.run_id)
    batcher = _Batcher(services, receipt, intake)
    seen: set[str] = set()
    for record in parse_lines(lines, kind):
        if isinstance(record, Rejected):
            _reject(receipt, record, on_reject, keep_rejected)
        elif record.key in seen:
            receipt.duplicates += 1
        else:
            seen.add(record.key)
            batcher.pending.append(record.key)
            if len(batcher.pending) >= batcher.chunk_size:
                await batcher.flush()
    await batcher.flush()
    if intake.bulk:
        await services.store.runs.record_bulk_plan(run.run_id, requests=batcher.requests, planned=True)
    await _publish(services, receipt)
    return receipt


def _reject(
    receipt: Receipt, record: Rejected, on_reject: Callable[[Rejected], None] | None, keep: int
) -> None:
    receipt.rejected_count += 1
    if len(receipt.rejected) < keep:
        receipt.rejected.append(record)
    if on_reject is not None:
        on_reject(record)


async def _publish(services: Services, receipt: Receipt) -> None:
    """Record what was accepted and let the run finish."""
    await services.store.runs.publish_inputs(
        receipt.run_id,
        accepted=receipt.accepted,
        rejected=receipt.rejected_count,
        duplicates=receipt.duplicates,
        sample=[Rejection(r.line, r.value, r.reason) for r in receipt.rejected[:REJECTED_SAMPLE]],
    )
    await services.store.runs.move(receipt.run_id, RunState.RUNNING, only_from=_STARTABLE)
    processed, accepted = await services.progress.set_accepted(receipt.run_id, receipt.accepted)
    await finish_if_complete(services, receipt.run_id, processed, accepted)
    await feed(services)


async def create_list_run(
    services: Services, kind: InputKind, values: Sequence[object], *, source: str, via: str | None = None
) -> Receipt:
    """A run from a JSON list; every bad element is rejected with its 0-based index as its `line`.

    `via` None: a plain collect run. Else the planner's rules (`jobs.planner`): fresh items are
    skipped, and "auto" goes by bulk when at least BULK_MIN_ITEMS are left."""
    intake = Intake()
    if via is not None:
        choice = via
        if via == "auto":
            choice = (await plan_lines(services, list_as_lines(values), kind, via)).choice
        intake = Intake(bulk=choice == "bulk", skip_fresh=True)
    return await enqueue_lines(
        services, list_as_lines(values), kind, source=source, keep_rejected=len(values), intake=intake
    )


def list_as_lines(values: Sequence[object]) -> Iterator[tuple[int, str | InputError]]:
    for index, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | str):
            yield index, InputError(f"expected a string or an integer, got {type(value).__name__}")
        elif isinstance(value, str) and ("\n" in value or "\r" in value):
            yield index, InputError("value contains a line break")
        elif isinstance(value, str) and (not value.strip() or value.strip().startswith("#")):
            # In a file these are blank lines and comments; in a JSON list they are bad items.
            yield index, InputError("empty value" if not value.strip() else "not an id or a name")
        else:
            yield index, str(value)


async def create_search_run(
    services: Services, body: object, *, max_profiles: int | None, source: str, via: str | None = None
) -> str:
    """`via` "auto"/"bulk": a bulk search run (its job counts first; auto below BULK_MIN_ITEMS
    turns it into a plain search run). None or "collect": a search run collected page by page."""
    if max_profiles is not None and max_profiles < 1:
        raise InputError("max_profiles must be at least 1")
    valid = validate_search_body(body)
    if via in ("auto", "bulk"):
        return await start_bulk_search_run(
            services, valid, max_profiles=max_profiles, source=source, auto=via == "auto"
        )
    return await start_search_run(services, valid, max_profiles=max_profiles, source=source)
