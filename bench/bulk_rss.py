"""Child process of `bench bulk`: ingest one data request's file and report peak RSS (JSON line).

One id_file request for BENCH_RECORDS existing ids (one file), polled until ready, downloaded and
decoded as it streams, written in BULK_INGEST_BATCH batches with `EmployeeSink.upsert_many`. On
the Mongo-wire server the database is dropped after each batch (it slows down as a collection
grows, which would make a 10,000-document file take many minutes); with MONGODB_URL it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import time
from collections.abc import AsyncGenerator
from typing import Any, cast

from config import Settings
from simulator.population import Population
from worker.bulk_files import FileDecoder
from worker.client import CoresignalClient
from worker.errors import StoreUnavailableError
from worker.run_model import utcnow
from worker.runtime import Services


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def main() -> dict[str, Any]:
    settings = Settings.model_validate(json.loads(os.environ["BENCH_SETTINGS"]))
    records = int(os.environ["BENCH_RECORDS"])
    drop_each = "MONGODB_URL" not in os.environ
    services = await Services.open(settings)
    client = CoresignalClient.open(settings.coresignal_base_url, settings.require_api_key(), timeout_s=30)
    try:
        request_id = await client.submit_id_file([Population.id_at(i) for i in range(records)])
        files = None
        while files is None:
            await asyncio.sleep(0.5)
            files = await client.poll_files(request_id)
        before = _rss_mib()
        started = time.perf_counter()
        compressed = batches = seen = 0
        for name in files:
            decoder = FileDecoder()
            batch: list[dict[str, Any]] = []
            chunks = cast(AsyncGenerator[bytes], client.download_file(request_id, name))
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    compressed += len(chunk)
                    for record in decoder.feed(chunk):
                        batch.append(record)
                        if len(batch) >= settings.bulk_ingest_batch:
                            batches, seen = batches + 1, seen + len(batch)
                            await _write(services, batch, drop_each)
                            batch = []
            batch.extend(decoder.finish())
            if batch:
                batches, seen = batches + 1, seen + len(batch)
                await _write(services, batch, drop_each)
        return {
            "records": seen,
            "compressed_bytes": f"{compressed:,}",
            "batches_written": batches,
            "rss_before_mib": round(before, 1),
            "rss_peak_mib": round(_rss_mib(), 1),
            "seconds": round(time.perf_counter() - started, 1),
            "writes": "upsert_many per batch"
            + (", database dropped after each (Mongo-wire)" if drop_each else ""),
        }
    finally:
        await services.store.drop_database()
        await client.close()
        await services.close()


async def _write(services: Services, batch: list[dict[str, Any]], drop_each: bool) -> None:
    for attempt in range(6):  # the Mongo-wire server can miss a heartbeat under load: as a job would, retry
        try:
            await services.store.employees.upsert_many(batch, run_id="bench", fetched_at=utcnow())
            break
        except StoreUnavailableError:
            if attempt == 5:
                raise
            await asyncio.sleep(1 + attempt)
    if drop_each:
        await services.store.drop_database()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
