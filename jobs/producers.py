"""Producers: turn input lines into a run, streaming, and store its inputs in chunks with the run.

Nothing is enqueued here directly: the feeder moves stored inputs into the bounded queue window, so
accepting a million items costs MongoDB a few hundred chunk documents and Redis nothing more than
the window. Everything accepted is in MongoDB before the call returns: nothing accepted is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jobs.feeder import feed
from jobs.inputs import InputKind, Rejected, parse_lines
from jobs.runs import RunState, create_run, finish_if_complete, new_run_id
from worker.errors import InputError
from worker.runtime import Services

REJECTED_SAMPLE = 100
RUNNING = RunState.RUNNING.value


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
        self.receipt.accepted += len(batch)
        self.pending = []
        if self.seq == 1:
            # Let workers start on the first chunk while a large input is still being read.
            await self.services.store.runs.transition(run_id, [RunState.ENQUEUEING.value], {"state": RUNNING})
            await feed(self.services)


async def enqueue_lines(
    services: Services,
    lines: Iterable[tuple[int, str | InputError]],
    kind: InputKind,
    *,
    source: str,
    on_reject: Callable[[Rejected], None] | None = None,
    keep_rejected: int = REJECTED_SAMPLE,
) -> Receipt:
    """Create a run from numbered input lines and enqueue one collect job per distinct item."""
    receipt = Receipt(new_run_id())
    await create_run(services, receipt.run_id, kind, source)
    batcher = _Batcher(services, receipt)
    seen: set[str] = set()
    try:
        for record in parse_lines(lines, kind):
            if isinstance(record, Rejected):
                _reject(receipt, record, on_reject, keep_rejected)
            elif record.key in seen:
                receipt.duplicates += 1
            else:
                seen.add(record.key)
                batcher.pending.append(record.key)
                if len(batcher.pending) >= services.settings.input_chunk_size:
                    await batcher.flush()
        await batcher.flush()
    finally:
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
    """Record what was accepted (even after a failure midway) and let the run finish."""
    await services.store.runs.update(
        receipt.run_id,
        {
            "inputs_complete": True,
            "accepted": receipt.accepted,
            "rejected": receipt.rejected_count,
            "duplicates": receipt.duplicates,
            "rejected_sample": [
                {"line": r.line, "value": r.value, "reason": r.reason}
                for r in receipt.rejected[:REJECTED_SAMPLE]
            ],
        },
    )
    await services.store.runs.transition(receipt.run_id, [RunState.ENQUEUEING.value], {"state": RUNNING})
    processed, accepted = await services.progress.set_accepted(receipt.run_id, receipt.accepted)
    await finish_if_complete(services, receipt.run_id, processed, accepted)
    await feed(services)
