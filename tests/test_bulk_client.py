"""The client's bulk section against the simulator on a real socket: submit → poll → download →
decode, and every refusal mapped onto the exception tree."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from simulator.app import RunningSimulator, start
from simulator.bulk_store import id_file_fingerprint
from simulator.config import DEFAULT_API_KEY, SimulatorConfig
from worker.bulk_files import FileDecoder
from worker.client import CoresignalClient
from worker.errors import (
    CorruptFileError,
    DataRequestConflictError,
    DataRequestNotFoundError,
    DataRequestTooLargeError,
    InputError,
    NoMatchingIdsError,
    OutOfCreditsError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    UpstreamUnavailableError,
)

MISSING_ID = 10_001  # off the id stride: never exists


class Observed:
    def __init__(self) -> None:
        self.seen: list[tuple[str, int | None]] = []

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None:
        self.seen.append((endpoint_class, status))


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    config = SimulatorConfig(
        population=5_000, bulk_file_records=1_000, bulk_base_delay_s=60, bulk_per_record_s=0
    )
    running = await start(config)
    try:
        yield running
    finally:
        await running.close()


@pytest.fixture
async def observed() -> Observed:
    return Observed()


@pytest.fixture
async def client(simulator: RunningSimulator, observed: Observed) -> AsyncIterator[CoresignalClient]:
    opened = CoresignalClient.open(simulator.base_url, DEFAULT_API_KEY, timeout_s=10, observer=observed)
    try:
        yield opened
    finally:
        await opened.close()


async def admin(simulator: RunningSimulator, path: str, body: Any) -> Any:
    url = f"http://{simulator.host}:{simulator.port}/_sim{path}"
    async with aiohttp.ClientSession() as session, session.request("POST", url, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def stats(simulator: RunningSimulator) -> Any:
    url = f"http://{simulator.host}:{simulator.port}/_sim/stats"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return await response.json()


def ids_of(simulator: RunningSimulator, count: int, start_index: int = 0) -> list[int]:
    population = simulator.state.population
    return [population.id_at(index) for index in range(start_index, start_index + count)]


async def decode_file(client: CoresignalClient, request_id: str, name: str) -> list[dict[str, Any]]:
    decoder = FileDecoder()
    records: list[dict[str, Any]] = []
    async with contextlib.aclosing(client.download_file(request_id, name, chunk_bytes=4_093)) as chunks:
        async for chunk in chunks:
            records.extend(decoder.feed(chunk))
    records.extend(decoder.finish())
    return records


async def ready(client: CoresignalClient, simulator: RunningSimulator, request_id: str) -> list[str]:
    assert await client.poll_files(request_id) is None  # processing: 202
    await admin(simulator, "/advance", {"seconds": 61})
    names = await client.poll_files(request_id)
    assert names is not None
    return names


@pytest.mark.slow
async def test_a_few_thousand_ids_submitted_polled_downloaded_and_decoded(
    client: CoresignalClient, simulator: RunningSimulator, observed: Observed
) -> None:
    wanted = ids_of(simulator, 3_500)
    request_id = await client.submit_id_file([*wanted, MISSING_ID], webhook_url="http://127.0.0.1:1/done")
    names = await ready(client, simulator, request_id)
    assert len(names) == 4  # 3,500 records, 1,000 per file
    delivered: list[dict[str, Any]] = []
    for name in names:
        delivered.extend(await decode_file(client, request_id, name))
    assert sorted(d["id"] for d in delivered) == wanted  # each exactly once, the absent id missing
    population = simulator.state.population
    assert all(d == population.profile(d["id"]) for d in delivered[::97])
    bulk = (await stats(simulator))["bulk"]
    assert bulk["posts_by_fingerprint"] == {id_file_fingerprint([*wanted, MISSING_ID]): 1}
    assert sorted(bulk["completed_by_file"].values()) == [1, 1, 1, 1]
    assert (await stats(simulator))["credits_charged"] == 3_500
    assert {label for label, _ in observed.seen} == {"bulk"}
    assert [status for _, status in observed.seen][:3] == [201, 202, 200]


@pytest.mark.slow
async def test_es_dsl_counted_first_then_submitted_with_a_limit(
    client: CoresignalClient, simulator: RunningSimulator
) -> None:
    body = {"query": {"range": {"id": {"lt": 10_000 + 7 * 1_500}}}}
    assert await client.count(body) == 1_500
    request_id = await client.submit_es_dsl(body, limit=1_200)
    names = await ready(client, simulator, request_id)
    records = [r for name in names for r in await decode_file(client, request_id, name)]
    delivered = [r["id"] for r in records]
    # `limit` takes the first 1,200 in the search's own order; files list them by id.
    assert len(set(delivered)) == len(delivered) == 1_200
    assert set(delivered) <= set(ids_of(simulator, 1_500))
    with pytest.raises(InputError):
        await client.submit_es_dsl({"match_all": {}})


@pytest.mark.slow
async def test_es_dsl_matching_over_10000_fails_at_files_with_422() -> None:
    simulator = await start(SimulatorConfig(population=10_050, bulk_base_delay_s=0, bulk_per_record_s=0))
    client = CoresignalClient.open(simulator.base_url, DEFAULT_API_KEY, timeout_s=30)
    try:
        request_id = await client.submit_es_dsl({"query": {"match_all": {}}})
        with pytest.raises(DataRequestTooLargeError, match="matched too many ids") as caught:
            await client.poll_files(request_id)
        assert caught.value.status == 422
    finally:
        await client.close()
        await simulator.close()


async def test_refusals_map_onto_the_exception_tree(
    client: CoresignalClient, simulator: RunningSimulator
) -> None:
    ids = ids_of(simulator, 3)
    await client.submit_id_file(ids)
    with pytest.raises(DataRequestConflictError, match="already in progress"):
        await client.submit_id_file(list(reversed(ids)))
    with pytest.raises(NoMatchingIdsError) as no_match:
        await client.submit_id_file([MISSING_ID])
    assert no_match.value.status == 404
    with pytest.raises(DataRequestNotFoundError):
        await client.poll_files("00000000-0000-0000-0000-000000000000")
    with pytest.raises(DataRequestTooLargeError, match="not sent"):
        await client.submit_id_file(list(range(10_001)))
    simulator.state.set_credits(2)
    with pytest.raises(OutOfCreditsError):
        await client.submit_id_file(ids_of(simulator, 5, start_index=10))
    assert (await stats(simulator))["credits_charged"] == 3


@pytest.mark.slow
async def test_expired_request_is_not_found(client: CoresignalClient, simulator: RunningSimulator) -> None:
    request_id = await client.submit_id_file(ids_of(simulator, 2))
    [name] = await ready(client, simulator, request_id)
    await admin(simulator, "/advance", {"days": 30})
    with pytest.raises(DataRequestNotFoundError):
        await client.poll_files(request_id)
    with pytest.raises(DataRequestNotFoundError):
        await decode_file(client, request_id, name)


async def test_rate_limited_bulk_requests_raise_rate_limited(
    client: CoresignalClient, simulator: RunningSimulator
) -> None:
    simulator.state.config.bulk_rps = 1
    simulator.state.clock = lambda: 5.0
    request_id = await client.submit_id_file(ids_of(simulator, 2))
    with pytest.raises(RateLimitedError):
        await client.poll_files(request_id)


@pytest.mark.slow
async def test_download_faults(client: CoresignalClient, simulator: RunningSimulator) -> None:
    request_id = await client.submit_id_file(ids_of(simulator, 800))
    [name] = await ready(client, simulator, request_id)
    config = simulator.state.config
    config.bulk_download_5xx_rate = 1.0
    with pytest.raises(UpstreamUnavailableError, match="503"):
        await decode_file(client, request_id, name)
    config.bulk_download_5xx_rate, config.bulk_reset_rate = 0.0, 1.0
    with pytest.raises(UpstreamUnavailableError):
        await decode_file(client, request_id, name)
    for fault in ("bulk_truncated_rate", "bulk_corrupt_rate"):
        config.bulk_reset_rate = 0.0
        setattr(config, fault, 1.0)
        with pytest.raises(CorruptFileError):
            await decode_file(client, request_id, name)
        setattr(config, fault, 0.0)
    # Content-Encoding: gzip does not make aiohttp inflate it: the decoder still sees gzip bytes.
    config.bulk_content_encoding_gzip = True
    assert len(await decode_file(client, request_id, name)) == 800


async def test_a_submit_without_an_answer_may_have_been_billed(
    client: CoresignalClient, simulator: RunningSimulator
) -> None:
    ids = ids_of(simulator, 2)
    simulator.state.config.error_rate_5xx = 1.0
    with pytest.raises(UpstreamUnavailableError) as answered:
        await client.submit_id_file(ids)
    assert not isinstance(answered.value, SubmitOutcomeUnknownError)  # a 503 is an answer: not billed
    simulator.state.config.error_rate_5xx, simulator.state.config.slow_rate = 0.0, 1.0
    simulator.state.config.slow_s = 5.0
    impatient = CoresignalClient.open(simulator.base_url, DEFAULT_API_KEY, timeout_s=0.2)
    try:
        with pytest.raises(SubmitOutcomeUnknownError, match="may have been billed"):
            await impatient.submit_id_file(ids)
    finally:
        await impatient.close()


async def test_a_submit_that_never_left_is_plainly_unavailable() -> None:
    client = CoresignalClient.open("http://127.0.0.1:9/cdapi", DEFAULT_API_KEY, timeout_s=2)
    try:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await client.submit_id_file([10_000])
        assert not isinstance(caught.value, SubmitOutcomeUnknownError)
    finally:
        await client.close()
