"""Every request-level refusal: its status, its code, and a message a person can act on."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import TOKEN, Api, MakeApi, assert_error

from config import Settings
from tests.conftest import with_overrides
from worker.runtime import Services

GOOD_QUERY = {"query": {"term": {"location_country": "Germany"}}}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ([1, 2], "must be a JSON object, not an array"),
        ("ids", "must be a JSON object, not a string"),
        (None, "must be a JSON object, not null"),
        (7, "must be a JSON object, not an integer"),
        ({}, "exactly one of employee_ids, shorthand_names or search (got none)"),
        ({"max_profiles": 5}, "(got none)"),
        ({"employee_ids": [1], "shorthand_names": ["ada"]}, "got employee_ids and shorthand_names"),
        ({"employee_ids": [1], "search": GOOD_QUERY}, "got employee_ids and search"),
        ({"employee_ids": [1], "colour": "blue"}, "unknown field 'colour'"),
        ({"employee_ids": "1,2,3"}, "employee_ids must be a JSON array, not a string"),
        ({"employee_ids": {"0": 1}}, "employee_ids must be a JSON array, not an object"),
        ({"employee_ids": None}, "employee_ids must be a JSON array, not null"),
        ({"shorthand_names": 5}, "shorthand_names must be a JSON array, not an integer"),
        ({"search": "name:ada"}, "search must be a JSON object (an ES-DSL body), not a string"),
        ({"search": [GOOD_QUERY]}, "search must be a JSON object (an ES-DSL body), not an array"),
        ({"search": GOOD_QUERY, "max_profiles": "5"}, "max_profiles must be an integer, not a string"),
        ({"search": GOOD_QUERY, "max_profiles": 5.5}, "max_profiles must be an integer, not a decimal"),
        ({"search": GOOD_QUERY, "max_profiles": True}, "max_profiles must be an integer, not a boolean"),
        ({"search": GOOD_QUERY, "max_profiles": None}, "max_profiles must be an integer, not null"),
        ({"search": GOOD_QUERY, "max_profiles": 0}, "max_profiles must be between 1 and"),
        ({"search": GOOD_QUERY, "max_profiles": 2**64}, "max_profiles must be between 1 and"),
        ({"employee_ids": [1], "max_profiles": 5}, "max_profiles applies to search runs only"),
        ({"employee_ids": []}, "employee_ids is empty"),
        ({"employee_ids": [1, True]}, "employee_ids[1] must be an integer or a string, not a boolean"),
        ({"employee_ids": [None, 2]}, "employee_ids[0] must be an integer or a string, not null"),
        ({"employee_ids": [{"id": 1}]}, "employee_ids[0] must be an integer or a string, not an object"),
        ({"employee_ids": [[1]]}, "employee_ids[0] must be an integer or a string, not an array"),
        ({"employee_ids": [1.5]}, "employee_ids[0] must be an integer or a string, not a decimal number"),
        ({"shorthand_names": [{}]}, "shorthand_names[0] must be a string, not an object"),
        ({"shorthand_names": ["ada", 12345]}, "shorthand_names[1] must be a string, not an integer"),
        ({"shorthand_names": []}, "shorthand_names is empty"),
    ],
)
@pytest.mark.slow
async def test_a_malformed_run_request_is_a_400_naming_the_problem(
    api: Api, body: Any, fragment: str
) -> None:
    error = assert_error(await api.post("/v1/runs", body), 400, "invalid_body")

    assert fragment in error["message"]


async def test_every_problem_of_a_body_is_listed_in_details(api: Api) -> None:
    reply = await api.post("/v1/runs", {"employee_ids": 5, "search": [], "extra": 1, "more": 2})

    problems = assert_error(reply, 400, "invalid_body")["details"]["problems"]
    assert len(problems) == 4
    assert any("unknown field 'more'" in p for p in problems)


@pytest.mark.parametrize(
    ("raw", "line", "column"),
    [
        (b'{"employee_ids": [1, 2,]}', 1, 23),  # at the trailing comma
        (b'{\n  "employee_ids": [1, 2]\n  "search": {}\n}', 3, 3),
        (b"{'employee_ids': [1]}", 1, 2),
        (b'{"employee_ids": [1]', 1, 21),
        (b'{"shorthand_names": ["a\x01b"]}', 1, 24),  # raw control character in a string
    ],
)
async def test_malformed_json_is_a_400_with_line_and_column(
    api: Api, raw: bytes, line: int, column: int
) -> None:
    error = assert_error(await api.request("POST", "/v1/runs", data=raw), 400, "invalid_json")

    assert error["details"] == {"line": line, "column": column}
    assert f"line {line} column {column}" in error["message"]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "request body is empty"),
        (b"   \n", "request body is empty"),
        (b'{"employee_ids": ["\xff"]}', "not UTF-8"),
        (b'{"employee_ids": [NaN]}', "NaN is not a JSON value"),
        (b'{"employee_ids": [Infinity]}', "Infinity is not a JSON value"),
        (b'{"employee_ids": [1], "employee_ids": [2]}', 'duplicate key "employee_ids"'),
        (b'{"employee_ids": [1' + b"0" * 5000 + b"]}", "more than 4300 digits"),
        (b'{"shorthand_names": ["\\ud800abc"]}', "unpaired UTF-16 surrogate"),
        (b'{"employee_ids": ' + b"[" * 100 + b"]" * 100 + b"}", "nested deeper than 64 levels"),
        (b'{"employee_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 64 levels"),
    ],
)
async def test_bodies_that_are_not_storable_json_are_refused(api: Api, raw: bytes, fragment: str) -> None:
    error = assert_error(await api.request("POST", "/v1/runs", data=raw), 400, "invalid_json")

    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("search", "fragment"),
    [
        ({"sort": ["id"]}, "needs a non-empty 'query' object"),
        ({"query": {}}, "needs a non-empty 'query' object"),
        ({"query": {"match_all": {}}, "aggs": {"x": {}}}, "aggregations are not supported"),
        ({"query": {"bool": {"should": [{"term": {"a": n}} for n in range(1100)]}}}, "clauses"),
    ],
)
async def test_a_search_body_the_api_would_refuse_is_a_422(api: Api, search: Any, fragment: str) -> None:
    error = assert_error(await api.post("/v1/runs", {"search": search}), 422, "invalid_query")

    assert fragment in error["message"]


async def test_lists_over_the_item_limit_are_413_with_the_limit(
    settings: Settings, services: Services, make_api: MakeApi
) -> None:
    api = await make_api(with_overrides(settings, api_max_items=3))

    error = assert_error(await api.post("/v1/runs", {"shorthand_names": ["a"] * 4}), 413, "too_large")

    assert "at most 3" in error["message"] and "API_MAX_ITEMS" in error["message"]
    assert error["details"] == {"limit_items": 3, "items": 4}
    assert (await api.post("/v1/runs", {"employee_ids": [1, 2, 3]})).status == 202


async def test_bodies_over_the_byte_limit_are_413_with_the_limit(
    settings: Settings, services: Services, make_api: MakeApi
) -> None:
    api = await make_api(with_overrides(settings, api_max_body_bytes=1024))
    big = {"employee_ids": ["1" * 1100]}

    error = assert_error(await api.post("/v1/runs", big), 413, "too_large")
    assert "larger than 1024 bytes" in error["message"]
    assert error["details"] == {"limit_bytes": 1024}


async def test_a_chunked_body_over_the_byte_limit_is_413_too(
    settings: Settings, services: Services, make_api: MakeApi
) -> None:
    api = await make_api(with_overrides(settings, api_max_body_bytes=1024))

    async def chunks() -> Any:  # no Content-Length: the limit is enforced while reading
        yield b'{"employee_ids": ['
        for _ in range(200):
            yield b'"12345678",'
        yield b"1]}"

    async with api.client.post(
        "/v1/runs", data=chunks(), headers={"Authorization": f"Bearer {TOKEN}"}
    ) as resp:
        assert resp.status == 413
        assert (await resp.json())["error"]["code"] == "too_large"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/runs/not-a-run",
        "/v1/runs/" + "0" * 31,
        "/v1/runs/" + "A" * 32,
        "/v1/runs/" + "0" * 33,
        "/v1/runs/%00%01",
        "/v1/employees/abc",
        "/v1/employees/-5",
        "/v1/employees/0",
        "/v1/employees/1.5",
        "/v1/employees/9223372036854775808",
        "/v1/employees/" + "9" * 40,
        "/v1/employees/%20%31",
    ],
)
async def test_malformed_or_out_of_range_ids_in_the_path_are_400(api: Api, path: str) -> None:
    assert_error(await api.get(path), 400, "invalid_parameter")


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
async def test_control_routes_validate_the_run_id_too(api: Api, action: str) -> None:
    assert_error(await api.post(f"/v1/runs/xyz/{action}"), 400, "invalid_parameter")


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("state=sleeping", "unknown state 'sleeping'; one of enqueueing, running, paused"),
        ("state=", "unknown state ''"),
        ("state=running&state=paused", "given more than once"),
        ("limit=0", "limit must be an integer from 1 to 200"),
        ("limit=201", "limit must be an integer from 1 to 200"),
        ("limit=-1", "limit must be"),
        ("limit=ten", "limit must be"),
        ("limit=1.5", "limit must be"),
        ("limit=" + "9" * 40, "limit must be"),
        ("cursor=", "invalid cursor"),
        ("cursor=!!!", "invalid cursor"),
        ("cursor=" + "A" * 600, "invalid cursor"),
        ("cursor=bm90LWEtY3Vyc29y", "invalid cursor"),  # the old base64 form
        ("cursor=12-" + "g" * 32, "invalid cursor"),
        ("cursor=12-" + "A" * 32, "invalid cursor"),
        ("cursor=12-" + "a" * 31, "invalid cursor"),
        ("cursor=" + "1" * 18 + "-" + "a" * 32, "invalid cursor"),
        ("cursor=-" + "a" * 32, "invalid cursor"),
        ("states=running", "unknown query parameter 'states'"),
    ],
)
async def test_bad_list_parameters_are_400(api: Api, query: str, fragment: str) -> None:
    error = assert_error(await api.get(f"/v1/runs?{query}"), 400, "invalid_parameter")

    assert fragment in error["message"]


async def test_an_unknown_route_and_a_wrong_method_use_the_envelope(api: Api) -> None:
    assert_error(await api.get("/v1/nothing-here"), 404, "not_found")
    reply = await api.request("DELETE", "/v1/runs")
    assert_error(reply, 405, "method_not_allowed")
    assert set(reply.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}


async def test_every_item_of_the_wrong_type_is_named_up_to_ten(api: Api) -> None:
    reply = await api.post("/v1/runs", {"shorthand_names": ["ada", *[{}] * 30]})

    problems = assert_error(reply, 400, "invalid_body")["details"]["problems"]
    assert problems[0] == "shorthand_names[1] must be a string, not an object"
    assert len(problems) == 11 and problems[-1] == "and 20 more problems"


async def test_a_body_with_thousands_of_problems_gets_a_short_answer(api: Api) -> None:
    body = {"employee_ids": [1], **{f"junk{n}": n for n in range(5000)}}

    reply = await api.post("/v1/runs", body)

    problems = assert_error(reply, 400, "invalid_body")["details"]["problems"]
    assert len(problems) == 11 and problems[-1] == "and 4990 more problems"
    assert len(reply.text) < 2000
