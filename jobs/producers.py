"""Producers: turn input lines into a run and its collect jobs, streaming and in batches.

Order matters for "nothing accepted is lost": each batch is first stored with the run in MongoDB,
then enqueued in one Redis round trip. A crash in between leaves inputs that `resume` can replay.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jobs.inputs import InputKind, Rejected, parse_lines
from jobs.runs import RunState, create_run, finish_if_complete, new_run_id
from worker import keys
from worker.errors import InputError
from worker.queue import JobSpec
from worker.runtime import Services

REJECTED_SAMPLE = 100


@dataclass(slots=True)
class Receipt:
    run_id: str
    accepted: int = 0
    duplicates: int = 0
    already_queued: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    rejected_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "accepted": self.accepted,
            "rejected": self.rejected_count,
            "duplicates": self.duplicates,
            "already_queued": self.already_queued,
        }


class _Batcher:
    def __init__(self, services: Services, receipt: Receipt) -> None:
        self.services = services
        self.receipt = receipt
        self.pending: list[str] = []
        self.seq = 0

    async def flush(self) -> None:
        if not self.pending:
            return
        run_id, batch = self.receipt.run_id, self.pending
        await self.services.store.runs.save_inputs(run_id, [batch], first_seq=self.seq)
        self.seq += 1
        jobs = [JobSpec(keys.collect_job_id(key), (run_id, key)) for key in batch]
        added = await self.services.queue.enqueue_many(keys.JOB_QUEUE, keys.COLLECT_JOB, jobs)
        skipped = added.count(False)
        if skipped:
            await self.services.progress.add(run_id, {"already_queued": skipped, "processed": skipped})
        self.receipt.accepted += len(batch)
        self.receipt.already_queued += skipped
        self.pending = []


async def enqueue_lines(
    services: Services,
    lines: Iterable[tuple[int, str | InputError]],
    kind: InputKind,
    *,
    source: str,
    on_reject: Callable[[Rejected], None] | None = None,
) -> Receipt:
    """Create a run from numbered input lines and enqueue one collect job per distinct item."""
    receipt = Receipt(new_run_id())
    await create_run(services, receipt.run_id, kind, source)
    batcher = _Batcher(services, receipt)
    seen: set[str] = set()
    try:
        for record in parse_lines(lines, kind):
            if isinstance(record, Rejected):
                _reject(receipt, record, on_reject)
            elif record.key in seen:
                receipt.duplicates += 1
            else:
                seen.add(record.key)
                batcher.pending.append(record.key)
                if len(batcher.pending) >= services.settings.enqueue_batch_size:
                    await batcher.flush()
        await batcher.flush()
    finally:
        await _publish(services, receipt)
    return receipt


def _reject(receipt: Receipt, record: Rejected, on_reject: Callable[[Rejected], None] | None) -> None:
    receipt.rejected_count += 1
    if len(receipt.rejected) < REJECTED_SAMPLE:
        receipt.rejected.append(record)
    if on_reject is not None:
        on_reject(record)


async def _publish(services: Services, receipt: Receipt) -> None:
    """Record what was accepted (even after a failure midway) and let the run finish."""
    await services.store.runs.transition(
        receipt.run_id,
        [RunState.ENQUEUEING.value],
        {
            "state": RunState.RUNNING.value,
            "accepted": receipt.accepted,
            "rejected": receipt.rejected_count,
            "duplicates": receipt.duplicates,
            "rejected_sample": [
                {"line": r.line, "value": r.value, "reason": r.reason} for r in receipt.rejected
            ],
        },
    )
    processed, accepted = await services.progress.set_accepted(receipt.run_id, receipt.accepted)
    await finish_if_complete(services, receipt.run_id, processed, accepted)
