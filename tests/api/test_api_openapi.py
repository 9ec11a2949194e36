"""The OpenAPI document and the router describe the same API: no drift in either direction."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from api_support import Api, MakeApi
from hypothesis import given, settings
from hypothesis import strategies as st

from api.auth import is_public
from api.items import as_value, rejected_if_none_usable
from api.openapi import build_openapi
from api.request_schema import USABLE_ID, decimal_at_most
from config import Settings
from tests.conftest import with_overrides
from worker.runtime import Services

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def routed(api: Api) -> set[tuple[str, str]]:
    """(method, path template) of every route the app serves. HEAD is aiohttp's automatic twin of GET."""
    routes = set()
    for route in api.client.app.router.routes():
        if route.method == "HEAD":
            continue
        routes.add((route.method.lower(), route.resource.canonical))
    return routes


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, path) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS
    }


async def test_every_route_is_documented_and_every_documented_route_exists(api: Api) -> None:
    doc = (await api.get("/openapi.json", token=None)).body

    assert routed(api) == documented(doc)
    assert (
        len(routed(api)) == 24 + 7 + 7
    )  # 11 API, 10 dashboard JSON, 3 dashboard files, + webhooks (7), + syncs (7)


async def test_the_document_is_openapi_3_1_with_bearer_auth_except_on_public_routes(api: Api) -> None:
    doc = (await api.get("/openapi.json", token=None)).body

    assert doc["openapi"] == "3.1.0"
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer"}
    assert doc["security"] == [{"bearerAuth": []}]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            public = operation.get("security") == []
            assert public == is_public(path), (method, path)
            assert ("401" in operation["responses"]) != public, (method, path)


async def test_every_path_parameter_and_schema_reference_resolves(api: Api) -> None:
    doc = (await api.get("/openapi.json", token=None)).body
    schemas = doc["components"]["schemas"]

    for path, item in doc["paths"].items():
        for operation in item.values():
            names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), path
            assert operation["responses"], path
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_the_document_is_built_the_same_every_time() -> None:
    assert build_openapi(max_items=10) == build_openapi(max_items=10)


async def test_the_served_document_states_this_apis_item_limit(settings: Settings, make_api: MakeApi) -> None:
    api = await make_api(with_overrides(settings, api_max_items=7))
    doc = (await api.get("/openapi.json", token=None)).body

    kinds = doc["components"]["schemas"]["CreateRunRequest"]["oneOf"]
    assert [
        kind["properties"][name]["maxItems"]
        for kind, name in zip(kinds, ["employee_ids", "shorthand_names"], strict=False)
    ] == [7, 7]


async def test_a_mirrored_employee_is_answered_as_the_document_describes(
    api: Api, services: Services
) -> None:
    """schemathesis cannot reach this 200 (it never guesses a mirrored id), so it is checked here."""
    profile = {"id": 4242, "full_name": "Ada Lovelace", "experience": [{"title": "analyst"}]}
    await services.store.employees.upsert(
        4242, profile, run_id="r" * 32, fetched_at=datetime(2025, 3, 1, tzinfo=UTC)
    )
    doc = (await api.get("/openapi.json", token=None)).body

    reply = await api.get("/v1/employees/4242")

    assert reply.status == 200, reply.text
    errors = list(
        jsonschema_rs.Draft202012Validator(doc["components"]["schemas"]["Employee"]).iter_errors(reply.body)
    )
    assert errors == [], errors


# JSON Schema 2020-12 with ECMA-262 regexes, as schemathesis and most clients read the document.
ID_ITEM = jsonschema_rs.Draft202012Validator({"type": ["integer", "string"]})
USABLE_ID_ITEM = jsonschema_rs.Draft202012Validator(USABLE_ID)
near_ids = st.one_of(
    st.integers(),
    st.sampled_from([0, 1, 2**63 - 1, 2**63, -1, 10**19, 9223372036854775799]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(0, 2**64).map(str),
    # digits with leading zeros, signs, comments, every kind of white space and line break around them
    st.from_regex(r"\A[\s0#+-]{0,3}[0-9]{0,20}[\s.]{0,3}\Z"),
    st.sampled_from(["", " ", "\u0663", "\uff15", "\ufeff5", "5\n", "\r5", "1e3", "0x10"]),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
)


@settings(max_examples=600, deadline=None)
@given(value=near_ids)
@pytest.mark.slow
def test_the_documented_employee_id_item_is_exactly_what_the_producer_takes(value: object) -> None:
    """The document's `contains` for employee_ids is exact, so only names may be a surprise 422."""
    item = as_value(value, "ids")
    assert ID_ITEM.is_valid(value) == (item is not None), value
    usable = item is not None and rejected_if_none_usable("ids", [item]) is None
    assert USABLE_ID_ITEM.is_valid(value) == usable, value


@settings(max_examples=300, deadline=None)
@given(bound=st.integers(1, 10**25), number=st.integers(0, 10**26), near=st.integers(-3, 3))
def test_decimal_at_most_matches_exactly_one_to_the_bound(bound: int, number: int, near: int) -> None:
    pattern = re.compile(decimal_at_most(bound))

    for candidate in (number, max(0, bound + near)):
        assert (pattern.fullmatch(str(candidate)) is not None) == (1 <= candidate <= bound), candidate
