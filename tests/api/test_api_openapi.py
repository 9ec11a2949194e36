"""The OpenAPI document and the router describe the same API: no drift in either direction."""

from __future__ import annotations

import re
from typing import Any

from api_support import Api

from api.auth import is_public
from api.openapi import build_openapi

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
    assert len(routed(api)) == 11 + 7  # + webhook receiver, subscriptions (5), change feed


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
    assert build_openapi() == build_openapi()
