"""Checking an ES-DSL search body before anything is charged (spec §3.1 limits). Pure functions.

Only what can be known without the API's mapping is checked here: a JSON object with a `query`
object, at most 15,000 characters, at most 1,024 clauses, no aggregations. Unknown fields and
other semantic errors come back from the API as 400/422 and end the run with that reason.
"""

from __future__ import annotations

import json
from typing import Any

from worker.errors import InputError

MAX_QUERY_CHARS = 15_000
MAX_CLAUSES = 1024
_COMPOUND_LISTS = ("must", "should", "must_not", "filter")


def parse_search_body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"search body is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    return validate_search_body(body)


def validate_search_body(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputError("search body must be a JSON object with a 'query'")
    if not isinstance(body.get("query"), dict) or not body["query"]:
        raise InputError("search body needs a non-empty 'query' object")
    if "aggs" in body or "aggregations" in body:
        raise InputError("aggregations are not supported by the search endpoint")
    clauses = count_clauses(body["query"])
    if clauses > MAX_CLAUSES:
        raise InputError(f"search query has {clauses} clauses; the API accepts at most {MAX_CLAUSES}")
    size = len(json.dumps(body, separators=(",", ":")))
    if size > MAX_QUERY_CHARS:
        raise InputError(f"search body is {size} characters; the API accepts at most {MAX_QUERY_CHARS}")
    return body


def count_clauses(query: object) -> int:
    """Leaf clauses (term, match, range...) at any depth; iterative, so deep nesting cannot crash it.

    Never stricter than the API, which also counts compound clauses nested in bool lists.
    """
    count, stack = 0, [query]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        for name, value in node.items():
            if name == "bool" and isinstance(value, dict):
                for part in _COMPOUND_LISTS:
                    items = value.get(part)
                    stack.extend(items if isinstance(items, list) else [items])
            elif name == "nested" and isinstance(value, dict):
                stack.append(value.get("query"))
            else:
                count += 1
    return count
