"""POST /cdapi/v2/employee_clean/search/es_dsl over HTTP (spec §3, §6, §7).

Expected results are computed here from the simulator's own documents, field by field, not with
the DSL compiler, so these tests say what a query means rather than repeat how it is evaluated.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from sim_support import API_KEY, SEARCH_PATH, MakeSim, Reply, Sim

import simulator.search
from simulator.search_paging import Match

GERMANY = {"query": {"term": {"location_country": "Germany"}}, "sort": ["id"]}
WORKING = {"query": {"term": {"is_working": 1}}}
NOTHING = {"query": {"term": {"location_country": "Atlantis"}}}
PAGE_HEADERS = ("x-total-results", "x-total-pages", "x-items-per-page", "x-next-page-after")


def ids_where(sim: Sim, predicate: Callable[[dict[str, Any]], bool]) -> list[int]:
    """Ids of present profiles for which `predicate` holds, ascending."""
    population = sim.state.population
    found = []
    for employee_id in population.iter_ids():
        document = population.profile(employee_id)
        assert document is not None
        if predicate(document):
            found.append(employee_id)
    return found


def totals(reply: Reply) -> tuple[int, int, int]:
    headers = reply.headers
    return int(headers["x-total-results"]), int(headers["x-total-pages"]), int(headers["x-items-per-page"])


async def walk(sim: Sim, body: Any, items_per_page: int) -> list[Reply]:
    """Every page of a search, following `x-next-page-after` until it is absent."""
    replies = [await sim.search(body, items_per_page=items_per_page)]
    while "x-next-page-after" in replies[-1].headers:
        assert len(replies) < 100, "the cursor never ran out"
        after = replies[-1].headers["x-next-page-after"]
        replies.append(await sim.search(body, after=after, items_per_page=items_per_page))
    assert all(reply.status == 200 for reply in replies)
    return replies


async def credits_charged(sim: Sim) -> int:
    charged: int = (await sim.stats())["credits_charged"]
    return charged


# -- what a query returns ---------------------------------------------------------------------


async def test_a_term_query_returns_exactly_the_matching_ids_by_id(sim: Sim) -> None:
    expected = ids_where(sim, lambda doc: doc["location_country"] == "Germany")
    assert 0 < len(expected) < sim.state.population.size

    # `size` and `_source` are accepted and change nothing: the API always answers with ids.
    reply = await sim.search({**GERMANY, "size": 5, "_source": ["full_name"]})

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == expected
    assert totals(reply) == (len(expected), 1, 1000)
    assert "x-next-page-after" not in reply.headers
    assert int(reply.headers["x-ratelimit-limit-second"]) == 18
    assert "x-credits-remaining" in reply.headers and "x-correlation-id" in reply.headers


async def test_a_nested_experience_query_matches_within_one_item(sim: Sim) -> None:
    company = next(
        item["company_name"]
        for employee_id in sim.state.population.iter_ids()
        for item in (sim.state.population.profile(employee_id) or {})["experience"]
        if item["date_to"] is None
    )
    # Currently at `company`: both conditions must hold for the same experience item.
    current_role = {
        "bool": {
            "must": [{"term": {"experience.company_name.exact": company}}],
            "must_not": [{"exists": {"field": "experience.date_to"}}],
        }
    }
    body = {"query": {"nested": {"path": "experience", "query": current_role}}, "sort": ["id"]}
    expected = ids_where(
        sim,
        lambda doc: any(
            item["company_name"] == company and item["date_to"] is None for item in doc["experience"]
        ),
    )
    ever_there = ids_where(
        sim, lambda doc: any(item["company_name"] == company for item in doc["experience"])
    )
    assert expected and set(expected) < set(ever_there)  # the query is more than "ever worked there"

    reply = await sim.search(body)

    assert (reply.status, reply.json()) == (200, expected)


async def test_an_empty_result_is_200_with_zero_totals_and_no_cursor(sim: Sim) -> None:
    reply = await sim.search(NOTHING)
    assert (reply.status, reply.json()) == (200, [])
    assert (reply.headers["x-total-results"], reply.headers["x-total-pages"]) == ("0", "0")
    assert "x-next-page-after" not in reply.headers


# -- pagination -------------------------------------------------------------------------------


async def test_following_the_cursor_visits_every_match_once_in_id_order(make_sim: MakeSim) -> None:
    sim = await make_sim(search_rps=1000)
    expected = ids_where(sim, lambda doc: doc["is_working"] == 1)
    pages = await walk(sim, {**WORKING, "sort": ["id"]}, items_per_page=25)

    assert [employee_id for reply in pages for employee_id in reply.json()] == expected
    assert all(len(reply.json()) == 25 for reply in pages[:-1]) and 1 <= len(pages[-1].json()) <= 25
    assert len(pages) == math.ceil(len(expected) / 25) > 1
    assert {totals(reply) for reply in pages} == {(len(expected), len(pages), 25)}
    # With sort id the cursor is the last id of the page (spec §3.3).
    assert pages[0].headers["x-next-page-after"] == str(pages[0].json()[-1])


async def test_default_order_is_last_updated_then_id_with_a_date_cursor(make_sim: MakeSim) -> None:
    sim = await make_sim(search_rps=1000)
    population = sim.state.population

    def last_updated(employee_id: int) -> str:
        return str((population.profile(employee_id) or {})["last_updated"])

    expected = sorted(ids_where(sim, lambda doc: doc["is_working"] == 1), key=lambda i: (last_updated(i), i))
    pages = await walk(sim, WORKING, items_per_page=25)

    assert [employee_id for reply in pages for employee_id in reply.json()] == expected
    last = pages[0].json()[-1]
    assert pages[0].headers["x-next-page-after"] == f'"{last_updated(last)}",{last}'


async def test_score_order_pages_cover_every_match_once(make_sim: MakeSim) -> None:
    sim = await make_sim(search_rps=1000)
    body = {"query": {"match": {"headline": "senior engineer manager"}}, "sort": ["_score"]}
    words = {"senior", "engineer", "manager"}
    expected = ids_where(sim, lambda doc: bool(words & set(re.findall(r"\w+", doc["headline"].lower()))))
    pages = await walk(sim, body, items_per_page=25)
    visited = [employee_id for reply in pages for employee_id in reply.json()]
    assert len(visited) == len(set(visited)) and set(visited) == set(expected)


async def test_items_per_page_defaults_to_1000_and_larger_values_are_clamped(sim: Sim) -> None:
    everyone = {"query": {"match_all": {}}, "sort": ["id"]}
    first = await sim.search(everyone)
    assert (first.json(), totals(first)) == (list(sim.state.population.iter_ids()), (500, 1, 1000))
    clamped = await sim.search(everyone, items_per_page=5000)
    assert (len(clamped.json()), totals(clamped)) == (500, (500, 1, 1000))
    assert totals(await sim.search(everyone, items_per_page=499)) == (500, 2, 499)


async def test_paging_through_a_query_costs_one_scan(make_sim: MakeSim) -> None:
    sim = await make_sim(search_rps=1000)
    pages = await walk(sim, {**WORKING, "sort": ["id"]}, items_per_page=25)
    assert len(pages) > 1
    # Same query in another spelling (key order, spacing): still the cached result.
    respelled = '{"sort":["id"],"query":{"term":{"is_working":1}}}'
    assert (await sim.search(respelled, raw=True, items_per_page=25)).json() == pages[0].json()
    assert sim.state.search_cache.scans == 1


async def test_concurrent_identical_searches_share_one_scan(make_sim: MakeSim) -> None:
    sim = await make_sim(search_rps=1000)
    replies = await asyncio.gather(*(sim.search(GERMANY) for _ in range(4)))
    assert len({reply.text for reply in replies}) == 1
    assert sim.state.search_cache.scans == 1


# -- changes to the population ----------------------------------------------------------------


async def test_a_removed_profile_disappears_from_the_next_search(sim: Sim) -> None:
    before = (await sim.search(GERMANY)).json()
    gone = before[1]

    assert (await sim.admin("POST", f"/profiles/{gone}/remove")).status == 200
    after = await sim.search(GERMANY)
    assert after.json() == [employee_id for employee_id in before if employee_id != gone]
    assert after.headers["x-total-results"] == str(len(before) - 1)

    assert (await sim.admin("POST", f"/profiles/{gone}/restore")).status == 200
    assert (await sim.search(GERMANY)).json() == before


async def test_a_mutated_profile_is_searched_as_its_new_version(sim: Sim) -> None:
    employee_id = 10_000
    last_updated = (sim.state.population.profile(employee_id) or {})["last_updated"]
    body = {"query": {"range": {"last_updated": {"gt": last_updated}}}, "sort": ["id"]}
    assert employee_id not in (await sim.search(body)).json()
    assert (await sim.admin("POST", f"/profiles/{employee_id}/mutate")).status == 200
    assert employee_id in (await sim.search(body)).json()  # a job change moves last_updated on


async def test_a_rebuilt_population_is_searched_afresh(sim: Sim) -> None:
    everyone = {"query": {"match_all": {}}, "sort": ["id"]}
    assert (await sim.search(everyone)).headers["x-total-results"] == "500"
    assert (await sim.admin("PATCH", "/config", {"population": 40})).status == 200
    assert (await sim.search(everyone)).headers["x-total-results"] == "40"


async def test_the_event_loop_keeps_serving_while_a_search_scans(
    sim: Sim, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    real_scan = simulator.search.scan

    def held_scan(*args: Any) -> list[Match]:
        # Would deadlock (and fail after 5 s) if the scan ran on the event loop's thread.
        assert release.wait(5)
        return real_scan(*args)

    monkeypatch.setattr(simulator.search, "scan", held_scan)
    searching = asyncio.create_task(sim.search(GERMANY))
    assert (await sim.collect(10_000)).status == 200
    assert not searching.done()
    release.set()
    assert (await searching).status == 200


# -- refusals ---------------------------------------------------------------------------------

TOO_LONG = {"query": {"terms": {"id": list(range(10_000, 13_000))}}}  # one clause, ~20 000 chars
TOO_MANY_CLAUSES = '{"query":{"bool":{"should":[%s]}}}' % ",".join(['{"bool":{}}'] * 1025)  # noqa: UP031


@pytest.mark.parametrize(
    ("body", "raw", "params", "status", "detail_has"),
    [
        ('{"query": {"match_all": {}}', True, {}, 422, "not valid JSON"),
        ("", True, {}, 422, "not valid JSON"),
        ('{"query": {"range": {"id": {"gt": NaN}}}}', True, {}, 422, "NaN"),
        ([{"query": {"match_all": {}}}], False, {}, 422, "JSON object"),
        ({"query": {"term": {"favourite_colour": "blue"}}}, False, {}, 400, "favourite_colour"),
        ({"query": {"nested": {"path": "member_experience", "query": {"match_all": {}}}}}, False, {}, 400,
         "member_experience"),
        ({"query": {"match_all": {}}, "sort": ["last_updated"]}, False, {}, 400, "sort"),
        ({"query": {"match_all": {}}, "aggs": {}}, False, {}, 400, "aggregations"),
        ({"sort": ["id"]}, False, {}, 400, "'query' is required"),
        (TOO_LONG, False, {}, 400, "15000 characters"),
        (TOO_MANY_CLAUSES, True, {}, 400, "1025 clauses"),
        (GERMANY, False, {"items_per_page": "0"}, 400, "items_per_page"),
        (GERMANY, False, {"items_per_page": "ten"}, 400, "items_per_page"),
        (GERMANY, False, {"after": "not-a-cursor"}, 400, "cursor"),
        (GERMANY, False, {"after": '"2025-03-15T00:00:00.000Z",10000'}, 400, "cursor"),  # not an id cursor
        (WORKING, False, {"after": "10000"}, 400, "cursor"),  # not a default-sort cursor
    ],
)  # fmt: skip
async def test_bad_requests_are_refused_and_not_billed(
    sim: Sim, body: Any, raw: bool, params: dict[str, str], status: int, detail_has: str
) -> None:
    reply = await sim.search(body, raw=raw, **params)  # type: ignore[arg-type]
    assert reply.status == status, reply.text
    detail = reply.json()["detail"]
    assert isinstance(detail, str) and detail_has in detail
    assert "x-total-results" not in reply.headers
    assert reply.headers["x-credits-remaining"] == "1000000000"
    assert await credits_charged(sim) == 0
    assert sim.state.search_cache.scans == 0  # refused before the population is scanned


async def test_a_body_beyond_the_servers_size_limit_is_the_same_400(sim: Sim) -> None:
    body = json.dumps({"query": {"match_all": {}}, "size": "x" * 2_000_000}).encode()
    # A stream, not bytes: aiohttp warns about sending a large bytes body in one piece.
    async with sim.client.session.post(
        sim.url(SEARCH_PATH), data=io.BytesIO(body), headers={"apikey": API_KEY}
    ) as response:
        assert (response.status, await response.json()) == (
            400,
            {"detail": "query payload exceeds 15000 characters"},
        )


@pytest.mark.slow
async def test_exactly_1024_clauses_are_allowed(sim: Sim) -> None:
    body = '{"query":{"bool":{"should":[%s]}}}' % ",".join(['{"bool":{}}'] * 1024)  # noqa: UP031
    assert (await sim.search(body, raw=True)).status == 200


async def test_without_an_api_key_it_is_401(sim: Sim) -> None:
    reply = await sim.search(GERMANY, api_key=None)
    assert (reply.status, reply.json()) == (401, {"detail": "Invalid authentication credentials"})
    assert not any(name in reply.headers for name in PAGE_HEADERS)
    stats = await sim.stats()
    assert (stats["credits_charged"], stats["classes"]["search"]["accepted"]) == (0, 0)
    assert (await sim.search(GERMANY, api_key="x" * 32)).status == 401


# -- credits and the rate limit ---------------------------------------------------------------


async def test_each_page_costs_search_cost_and_402_when_it_runs_out(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=3, search_rps=1000)
    first = await sim.search(WORKING, items_per_page=25)
    second = await sim.search(WORKING, items_per_page=25, after=first.headers["x-next-page-after"])
    empty = await sim.search(NOTHING)  # an empty 200 is still a 200
    refused = await sim.search(WORKING, items_per_page=25)
    assert [(r.status, r.headers["x-credits-remaining"]) for r in (first, second, empty, refused)] == [
        (200, "2"),
        (200, "1"),
        (200, "0"),
        (402, "0"),
    ]
    assert refused.json() == {"detail": "Insufficient credits"}
    assert await credits_charged(sim) == 3


async def test_search_cost_is_configurable(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=25, search_cost=10)
    replies = [await sim.search(GERMANY) for _ in range(3)]
    assert [(r.status, r.headers["x-credits-remaining"]) for r in replies] == [
        (200, "15"),
        (200, "5"),
        (402, "5"),
    ]


async def test_free_search_answers_even_with_no_credits_left(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=0, search_cost=0)
    reply = await sim.search(GERMANY)
    assert (reply.status, reply.headers["x-credits-remaining"]) == (200, "0")
    assert reply.json()
    assert (await sim.collect(10_000)).status == 402  # collect still costs
    stats = await sim.stats()
    assert (stats["credits_remaining"], stats["credits_charged"]) == (0, 0)


async def test_a_burst_of_searches_gets_exactly_the_limit_through(make_sim: MakeSim) -> None:
    sim = await make_sim(search_rps=3, credits=100)
    replies = await asyncio.gather(*(sim.search(GERMANY) for _ in range(6)))
    assert sorted(reply.status for reply in replies) == [200] * 3 + [429] * 3
    rejected = next(reply for reply in replies if reply.status == 429)
    assert rejected.json() == {"detail": "Too many requests"}
    assert (
        rejected.headers["x-ratelimit-limit-second"],
        rejected.headers["x-ratelimit-remaining-second"],
    ) == (
        "3",
        "0",
    )

    stats = await sim.stats()
    search = stats["classes"]["search"]
    expected = {"accepted": 3, "rejected_429": 3, "max_in_any_second": 3, "limit_rps": 3}
    assert {name: search[name] for name in expected} == expected
    assert stats["classes"]["collect"]["accepted"] == 0  # search has its own bucket
    assert (stats["status_counts"], stats["credits_charged"]) == ({"200": 3, "429": 3}, 3)


def test_the_body_limit_cases_are_what_they_claim() -> None:
    assert len(json.dumps(TOO_LONG)) > 15_000
    assert len(TOO_MANY_CLAUSES) < 15_000
