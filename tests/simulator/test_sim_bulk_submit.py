"""Bulk data request submission (spec §8.1): every status a POST can answer, and its billing."""

from __future__ import annotations

import re

import pytest
from bulk_support import existing_ids, ids_text, list_files, post_es_dsl, post_id_file
from sim_support import API_KEY, MakeSim, Sim

from simulator.bulk_store import id_file_fingerprint

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MISSING_ID = 10_001  # not on the id stride: never exists


async def billing(sim: Sim) -> tuple[int | None, int, int]:
    stats = await sim.stats()
    return stats["credits_remaining"], stats["credits_charged"], len(stats["bulk"]["requests"])


async def test_id_file_is_accepted_and_charged_per_existing_record(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=100, bulk_base_delay_s=0, bulk_per_record_s=0)
    ids = existing_ids(sim, 5)
    reply = await post_id_file(sim, ids_text([*ids, MISSING_ID]), webhook_url="http://127.0.0.1:1/hook")
    assert reply.status == 201, reply.text
    request_id = reply.json()["request_id"]
    assert UUID.match(request_id)
    assert reply.headers["Location"] == f"/v2/data_requests/{request_id}/files"
    assert reply.headers["x-credits-remaining"] == "95"
    assert await billing(sim) == (95, 5, 1)
    assert (await sim.stats())["bulk"]["requests"][request_id]["records"] == 5


async def test_id_file_accepts_csv_with_commas_and_crlf(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_base_delay_s=0, bulk_per_record_s=0)
    ids = existing_ids(sim, 4)
    reply = await post_id_file(sim, f"{ids[0]},{ids[1]}\r\n{ids[2]}\r\n{ids[3]}\r\n", filename="ids.txt")
    assert reply.status == 201, reply.text
    assert (await sim.stats())["credits_charged"] == 4


async def test_more_than_10000_ids_is_400_and_nothing_is_created(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=50_000)
    reply = await post_id_file(sim, ids_text(list(range(10_000, 10_000 + 7 * 10_001, 7))))
    assert (reply.status, reply.json()) == (
        400,
        {"detail": "file contains too many ids maximum is 10,000 ids"},
    )
    assert await billing(sim) == (50_000, 0, 0)
    assert (await sim.stats())["bulk"]["posts_by_fingerprint"] == {}


async def test_an_id_file_past_the_body_limit_is_also_too_many_ids(sim: Sim) -> None:
    reply = await post_id_file(sim, ids_text(list(range(10_000_000, 10_200_000))))
    assert (reply.status, reply.json()["detail"]) == (400, "file contains too many ids maximum is 10,000 ids")


async def test_exactly_10000_ids_is_accepted(make_sim: MakeSim) -> None:
    sim = await make_sim()
    reply = await post_id_file(sim, ids_text(list(range(10_000, 10_000 + 7 * 10_000, 7))))
    assert reply.status == 201, reply.text
    # The test population has 500 employees: only those are billed.
    assert (await sim.stats())["credits_charged"] == 500


async def test_non_numeric_content_is_400(sim: Sim) -> None:
    for content in ("10000\njohn-doe\n", "id\n10000\n", "10000\n-7\n", "1.5\n"):
        reply = await post_id_file(sim, content)
        assert reply.status == 400, content
        assert reply.json() == {"detail": "file must contain numeric ids only"}
    assert await billing(sim) == (None, 0, 0)


async def test_empty_file_and_missing_field_are_400(sim: Sim) -> None:
    assert (await post_id_file(sim, "\n\n")).json() == {"detail": "file contains no ids"}
    headers = {"apikey": API_KEY, "Content-Type": "application/json"}
    reply = await sim.request(
        "POST", "/cdapi/v2/data_requests/employee_clean/id_file", headers=headers, json_body={}
    )
    assert reply.status == 400


async def test_no_matching_ids_is_404(sim: Sim) -> None:
    reply = await post_id_file(sim, ids_text([MISSING_ID, 99_999_999]))
    assert (reply.status, reply.json()) == (404, {"detail": "No matching ids found"})
    assert await billing(sim) == (None, 0, 0)


async def test_not_enough_credits_is_402_and_nothing_is_billed(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=4)
    reply = await post_id_file(sim, ids_text(existing_ids(sim, 5)))
    assert (reply.status, reply.json()) == (402, {"detail": "Insufficient credits"})
    assert await billing(sim) == (4, 0, 0)


async def test_identical_request_in_flight_is_409_then_allowed_once_ready(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_base_delay_s=60, bulk_per_record_s=0)
    ids = existing_ids(sim, 3)
    assert (await post_id_file(sim, ids_text(ids))).status == 201
    again = await post_id_file(sim, ids_text(list(reversed(ids))))  # same ids, other order
    assert (again.status, again.json()) == (409, {"detail": "Identical data request is already in progress."})
    assert (await post_id_file(sim, ids_text(ids[:2]))).status == 201  # a different request
    await sim.admin("POST", "/advance", {"seconds": 61})
    assert (await post_id_file(sim, ids_text(ids))).status == 201
    stats = (await sim.stats())["bulk"]
    assert stats["posts_by_fingerprint"][id_file_fingerprint(ids)] == 3
    assert stats["created_by_fingerprint"][id_file_fingerprint(ids)] == 2
    assert (await sim.stats())["credits_charged"] == 3 + 2 + 3


async def test_es_dsl_with_nested_or_top_level_query_and_limit(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_base_delay_s=0, bulk_per_record_s=0)
    query = {"query": {"range": {"id": {"lt": 10_000 + 7 * 40}}}}
    nested = await post_es_dsl(sim, {"es_dsl_query": query, "limit": 25})
    assert nested.status == 201, nested.text
    top_level = await post_es_dsl(sim, {**query, "limit": 30})
    assert top_level.status == 201, top_level.text
    # A different limit is a different request, so no 409; each billed what it will deliver.
    assert (await sim.stats())["credits_charged"] == 25 + 30
    unlimited = await post_es_dsl(sim, query)
    assert unlimited.status == 201
    assert (await sim.stats())["credits_charged"] == 25 + 30 + 40


async def test_es_dsl_bad_bodies_are_400(sim: Sim) -> None:
    for body in (
        [1, 2],
        {"limit": 5},
        {"es_dsl_query": "match_all"},
        {"query": {"match_all": {}}, "limit": 0},
        {"query": {"match_all": {}}, "limit": True},
        {"query": {"no_such_clause": {}}},
    ):
        reply = await post_es_dsl(sim, body)
        assert reply.status == 400, (body, reply.text)
    assert await billing(sim) == (None, 0, 0)


async def test_es_dsl_with_no_match_is_404(sim: Sim) -> None:
    reply = await post_es_dsl(sim, {"query": {"term": {"id": MISSING_ID}}})
    assert reply.status == 404


@pytest.mark.slow
async def test_es_dsl_matching_over_10000_is_accepted_then_422_at_files(make_sim: MakeSim) -> None:
    sim = await make_sim(bulk_base_delay_s=0, bulk_per_record_s=0)
    assert (await sim.admin("PATCH", "/config", {"population": 10_050})).status == 200
    reply = await post_es_dsl(sim, {"es_dsl_query": {"query": {"match_all": {}}}})
    assert reply.status == 201, reply.text
    listed = await list_files(sim, reply.json()["request_id"])
    assert (listed.status, listed.json()) == (
        422,
        {"detail": "request matched too many ids maximum is 10,000 ids"},
    )
    # GUESS (documented in simulator.bulk_submit): billed at POST, capped at 10,000.
    assert (await sim.stats())["credits_charged"] == 10_000
    limited = await post_es_dsl(sim, {"es_dsl_query": {"query": {"match_all": {}}}, "limit": 10})
    assert (await list_files(sim, limited.json()["request_id"])).status == 200


async def test_bulk_needs_an_api_key(sim: Sim) -> None:
    reply = await post_id_file(sim, "10000\n", api_key=None)
    assert reply.status == 401
    assert (await list_files(sim, "00000000-0000-0000-0000-000000000000")).status == 404
