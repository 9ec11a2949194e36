"""Bulk data request files (spec §8.2, §8.3): readiness, content, expiry, rate class, faults, stats."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import zlib

import aiohttp
import pytest
from bulk_support import (
    FILES_PATH,
    download_raw,
    existing_ids,
    ids_text,
    jsonl_documents,
    list_files,
    post_id_file,
    submit_ready,
)
from sim_support import API_KEY, MakeSim, document

FILE_NAME = re.compile(r"^json/part-\d{5}-[0-9a-f-]{36}-c000\.json\.gz$")
INSTANT = {"bulk_base_delay_s": 0, "bulk_per_record_s": 0}


async def test_files_are_202_while_processing_then_listed(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_base_delay_s=10, bulk_per_record_s=1)
    sim.state.clock = lambda: 100.0  # ready at 100 + 10 + 5 * 1
    reply = await post_id_file(sim, ids_text(existing_ids(sim, 5)))
    request_id = reply.json()["request_id"]
    pending = await list_files(sim, request_id)
    assert (pending.status, pending.json()) == (202, {"data_request_files": []})
    await sim.admin("POST", "/advance", {"seconds": 14.5})
    assert (await list_files(sim, request_id)).status == 202
    await sim.admin("POST", "/advance", {"seconds": 0.5})
    ready = await list_files(sim, request_id)
    assert ready.status == 200
    [name] = ready.json()["data_request_files"]
    assert FILE_NAME.match(name)


async def test_files_hold_the_collect_documents_split_by_bulk_file_records(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_file_records=7, **INSTANT)
    wanted = existing_ids(sim, 20)
    sim.state.population.remove(wanted[3])  # removed before the submit: not delivered
    request_id, names = await submit_ready(sim, [*wanted, 10_001])
    assert [name[:16] for name in names] == ["json/part-00000-", "json/part-00001-", "json/part-00002-"]
    delivered = []
    for name in names:
        status, headers, raw = await download_raw(sim, request_id, name)
        assert status == 200
        assert raw[:2] == b"\x1f\x8b"
        assert "Content-Encoding" not in headers
        documents = jsonl_documents(raw)
        assert len(documents) <= 7
        delivered.extend(documents)
    expected = [i for i in wanted if i != wanted[3]]
    assert [d["id"] for d in delivered] == expected
    assert delivered == [document(sim, i) for i in expected]


@pytest.mark.slow
async def test_json_array_layout_and_gzip_content_encoding(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_file_layout="json_array", bulk_content_encoding_gzip=True, **INSTANT)
    ids = existing_ids(sim, 250)
    request_id, [name] = await submit_ready(sim, ids)
    status, headers, raw = await download_raw(sim, request_id, name)
    assert (status, headers["Content-Encoding"]) == (200, "gzip")
    parsed = json.loads(gzip.decompress(raw))
    assert [d["id"] for d in parsed] == ids


async def test_expired_after_30_days_of_the_bulk_clock(make_sim: MakeSim) -> None:
    sim = await make_sim(**INSTANT)
    request_id, [name] = await submit_ready(sim, existing_ids(sim, 3))
    await sim.admin("POST", "/advance", {"days": 29.9})
    assert (await download_raw(sim, request_id, name))[0] == 200
    await sim.admin("POST", "/advance", {"days": 0.1})
    assert (await list_files(sim, request_id)).status == 404
    assert (await download_raw(sim, request_id, name))[0] == 404


async def test_unknown_files_not_ready_files_and_bad_advance(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_base_delay_s=60)
    request_id = (await post_id_file(sim, ids_text(existing_ids(sim, 2)))).json()["request_id"]
    assert (await download_raw(sim, request_id, "json/part-00000-x-c000.json.gz"))[0] == 404
    await sim.admin("POST", "/advance", {"seconds": 61})
    assert (await download_raw(sim, request_id, "json/nope.json.gz"))[0] == 404
    assert (await download_raw(sim, "no-such-request", "x"))[0] == 404
    for body in ({"hours": 1}, {"days": -1}, {}, [1]):
        assert (await sim.admin("POST", "/advance", body)).status == 400


async def test_all_bulk_endpoints_share_the_bulk_rate_class(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_rps=3, **INSTANT)
    sim.state.clock = lambda: 5.0  # every request arrives in the same instant
    reply = await post_id_file(sim, ids_text(existing_ids(sim, 2)))
    request_id = reply.json()["request_id"]
    [name] = (await list_files(sim, request_id)).json()["data_request_files"]
    assert (await download_raw(sim, request_id, name))[0] == 200
    assert (await list_files(sim, request_id)).status == 429
    assert (await post_id_file(sim, ids_text(existing_ids(sim, 1)))).status == 429
    bulk = (await sim.stats())["classes"]["bulk"]
    assert (bulk["accepted"], bulk["rejected_429"], bulk["max_in_any_second"]) == (3, 2, 3)
    assert (await sim.stats())["credits_charged"] == 2


async def test_truncated_file_lacks_its_end(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_truncated_rate=1.0, **INSTANT)
    request_id, [name] = await submit_ready(sim, existing_ids(sim, 450))
    status, _, raw = await download_raw(sim, request_id, name)
    assert status == 200
    with pytest.raises(EOFError):
        gzip.decompress(raw)
    # The prefix is sound: a streaming decoder gets the first records before it notices.
    prefix = zlib.decompressobj(31).decompress(raw)
    assert prefix.startswith(b'{"id":10000,')


async def test_corrupt_file_fails_to_decompress(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_corrupt_rate=1.0, **INSTANT)
    request_id, [name] = await submit_ready(sim, existing_ids(sim, 300))
    status, _, raw = await download_raw(sim, request_id, name)
    assert status == 200
    with pytest.raises((zlib.error, gzip.BadGzipFile, EOFError)):
        gzip.decompress(raw)


async def test_download_5xx_and_reset_mid_file(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_download_5xx_rate=1.0, **INSTANT)
    request_id, [name] = await submit_ready(sim, existing_ids(sim, 400))
    status, _, raw = await download_raw(sim, request_id, name)
    assert (status, json.loads(raw)) == (503, {"detail": "Service temporarily unavailable"})
    await sim.admin("PATCH", "/config", {"bulk_download_5xx_rate": 0.0, "bulk_reset_rate": 1.0})
    with pytest.raises(aiohttp.ClientPayloadError):
        await download_raw(sim, request_id, name)
    stats = (await sim.stats())["bulk"]
    key = f"{request_id}/{name}"
    assert (stats["downloads_by_file"][key], stats["completed_by_file"].get(key)) == (2, None)
    assert (await sim.stats())["status_counts"]["reset"] == 1


async def test_slow_file_trips_a_client_timeout(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_slow_rate=1.0, bulk_slow_chunk_s=5.0, **INSTANT)
    request_id, [name] = await submit_ready(sim, existing_ids(sim, 3))
    url = sim.url(FILES_PATH.format(request_id) + "/" + name)
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        async with sim.client.session.get(url, headers={"apikey": API_KEY}, timeout=timeout) as response:
            await response.read()


async def test_stats_count_posts_and_downloads_and_reset_clears_them(make_sim: MakeSim) -> None:
    sim = await make_sim(**INSTANT)
    request_id, [name] = await submit_ready(sim, existing_ids(sim, 3))
    for _ in range(2):
        assert (await download_raw(sim, request_id, name))[0] == 200
    bulk = (await sim.stats())["bulk"]
    key = f"{request_id}/{name}"
    assert (bulk["downloads_by_file"][key], bulk["completed_by_file"][key]) == (2, 2)
    assert list(bulk["posts_by_fingerprint"].values()) == [1]
    await sim.admin("POST", "/reset")
    bulk = (await sim.stats())["bulk"]
    assert (bulk["requests"], bulk["downloads_by_file"], bulk["posts_by_fingerprint"]) == ({}, {}, {})
    assert (await list_files(sim, request_id)).status == 404
