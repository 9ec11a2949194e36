"""The content of a bulk file, streamed: gzip-compressed JSONL (or a JSON array), with faults.

The file is generated while it is sent, a batch of profiles at a time, so a 10,000-record file
never sits in memory. The documents are the ones collect returns (`Population.profile`), so a
client can compare bulk and collect byte for byte after parsing. An id removed since the
submit is simply absent, like an id that never existed.

Faults (one per download at most, drawn from the simulator's seeded fault stream):
- "truncated": the stream stops about half way, without the gzip trailer, and the response
  ends normally: only a decompressor that checks for end-of-stream notices;
- "corrupt": bytes in the middle of the compressed stream are inverted: the decompressor (or
  the CRC check at its end) fails;
- "reset": the connection is aborted half way through the body;
- "5xx": a 503 instead of the file (decided before anything is sent);
- "slow": each batch waits `bulk_slow_chunk_s` before it is sent.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

from aiohttp import web

from simulator.config import SimulatorConfig
from simulator.population import Population

BATCH_RECORDS = 100
# gzip container (RFC 1952) around deflate, what `gzip` and S3 deliveries produce.
_GZIP_WBITS = 31
_CORRUPT_BYTES = 16
_SLOW_POLL_S = 0.05

DOWNLOAD_FAULTS = ("truncated", "corrupt", "reset", "5xx", "slow")


def draw_download_fault(config: SimulatorConfig, draw: float) -> str | None:
    """Which fault (if any) a download gets, from one uniform draw in [0, 1)."""
    threshold = 0.0
    for rate, fault in (
        (config.bulk_truncated_rate, "truncated"),
        (config.bulk_corrupt_rate, "corrupt"),
        (config.bulk_reset_rate, "reset"),
        (config.bulk_download_5xx_rate, "5xx"),
        (config.bulk_slow_rate, "slow"),
    ):
        threshold += rate
        if draw < threshold:
            return fault
    return None


def _documents(population: Population, ids: Sequence[int]) -> Iterator[dict[str, Any]]:
    for employee_id in ids:
        document = population.profile(employee_id)
        if document is not None:
            yield document


def _plain_batches(population: Population, ids: Sequence[int], layout: str) -> Iterator[bytes]:
    """The uncompressed file, a batch of records at a time."""
    batch: list[str] = []
    first = True
    if layout == "json_array":
        yield b"["
    for document in _documents(population, ids):
        text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
        if layout == "json_array":
            batch.append(text if first else "," + text)
        else:
            batch.append(text + "\n")
        first = False
        if len(batch) >= BATCH_RECORDS:
            yield "".join(batch).encode()
            batch = []
    if batch:
        yield "".join(batch).encode()
    if layout == "json_array":
        yield b"]\n"


def file_chunks(
    population: Population, ids: Sequence[int], layout: str, fault: str | None
) -> Iterator[bytes]:
    """The gzip stream of one file as compressed chunks, with a content fault applied."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, _GZIP_WBITS)
    batches = max(1, -(-len(ids) // BATCH_RECORDS))
    cut_at = batches // 2  # truncated: stop after this batch; corrupt: damage this one
    for index, plain in enumerate(_plain_batches(population, ids, layout)):
        chunk = compressor.compress(plain)
        if fault == "corrupt" and index == cut_at:
            chunk = _invert_middle(chunk + compressor.flush(zlib.Z_FULL_FLUSH))
        if fault == "truncated" and index == cut_at:
            # What was compressed so far decodes; then nothing: no final block, no trailer.
            yield chunk + compressor.flush(zlib.Z_SYNC_FLUSH)
            return
        if chunk:
            yield chunk
    yield compressor.flush()


def _invert_middle(chunk: bytes) -> bytes:
    if not chunk:
        return chunk
    start = max(0, len(chunk) // 2 - _CORRUPT_BYTES // 2)
    damaged = bytes(b ^ 0xFF for b in chunk[start : start + _CORRUPT_BYTES])
    return chunk[:start] + damaged + chunk[start + len(damaged) :]


async def pause_for_slow(config: SimulatorConfig, fault: str | None, request: web.Request) -> None:
    """The "slow" fault's wait before a batch; cut short once the client has gone (no point
    holding up server shutdown for a download nobody reads)."""
    if fault != "slow" or config.bulk_slow_chunk_s <= 0:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + config.bulk_slow_chunk_s
    while (remaining := deadline - loop.time()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(_SLOW_POLL_S, remaining))
