"""The request side of the OpenAPI document: what POST /v1/runs may send, as exactly as JSON Schema can.

For `employee_ids` the document is exact: its `contains` says which items the producer takes as ids
(tests/api/test_api_openapi.py checks it against the producer's parser). For shorthand names it cannot
be (percent-decoding, URL parsing), nor for the search limits; those two are the 422s a schema-valid
body can get, as the document says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.validation import MAX_PROFILES
from jobs.inputs import MAX_EMPLOYEE_ID
from jobs.search_input import MAX_CLAUSES, MAX_QUERY_CHARS

Schema = dict[str, Any]


def object_schema(
    properties: Mapping[str, Schema | bool], *, required: list[str] | None = None, closed: bool = True
) -> Schema:
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": not closed}
    if required is not None:
        schema["required"] = required
    return schema


# What str.strip() removes around an item, less the line breaks that make an item a rejection. Spelled
# out because `\s` means different characters in ECMA-262 (JSON Schema's regexes) and in Python.
_SPACE = r"[\t\x0b\x0c\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"


def decimal_at_most(bound: int) -> str:
    """A regex matching exactly the decimal numbers 1..bound written without leading zeros."""
    digits = str(bound)
    shorter = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    same_length = []
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            rest = len(digits) - i - 1
            same_length.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return "(?:" + "|".join([*shorter, *same_length, digits]) + ")"


# An item the producer takes as an employee id: 1..2^63-1, as a JSON integer or as digits in a string.
USABLE_ID = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_EMPLOYEE_ID},
        {"type": "string", "pattern": f"^{_SPACE}*0*{decimal_at_most(MAX_EMPLOYEE_ID)}{_SPACE}*$"},
    ]
}


# How the run collects (the planner, `jobs.planner`); absent: collect, fresh profiles collected again.
VIA: Schema = {
    "type": "string",
    "enum": ["auto", "collect", "bulk"],
    "description": "auto: skip fresh, then bulk when at least BULK_MIN_ITEMS are left; names stay on collect",
}


def _list_request(name: str, items: Schema, max_items: int, **extra: Any) -> Schema:
    schema = {"type": "array", "minItems": 1, "maxItems": max_items, "items": items, **extra}
    # Names stay on collect: `via` bulk is refused for them (400).
    via = VIA if name == "employee_ids" else {**VIA, "enum": ["auto", "collect"]}
    return object_schema({name: schema, "via": via}, required=[name])


def _search_request() -> Schema:
    search = object_schema(
        {
            "query": {"type": "object", "minProperties": 1},
            # Not served by the search endpoint: refused before anything is charged.
            "aggs": False,
            "aggregations": False,
        },
        required=["query"],
        closed=False,
    )
    search["description"] = (
        f"an Elasticsearch DSL body with a non-empty query; a body over {MAX_QUERY_CHARS:,} characters "
        f"or {MAX_CLAUSES:,} clauses is refused with 422 invalid_query"
    )
    max_profiles = {"type": "integer", "minimum": 1, "maximum": MAX_PROFILES}
    return object_schema({"search": search, "max_profiles": max_profiles, "via": VIA}, required=["search"])


def request_schemas(max_items: int) -> dict[str, Schema]:
    ids = _list_request(
        "employee_ids",
        {"type": ["integer", "string"]},
        max_items,
        contains=USABLE_ID,
        description="Coresignal employee ids (integers or digit strings). Other integers and strings "
        "are rejected one by one (listed in rejected); at least one item must be an id (422 otherwise).",
    )
    names = _list_request(
        "shorthand_names",
        {"type": "string"},
        max_items,
        description="shorthand names or linkedin.com/in/<name> profile URLs. Strings that are neither "
        "are rejected one by one (listed in rejected); a list with no usable name is a 422.",
    )
    return {
        "CreateRunRequest": {
            "oneOf": [ids, names, _search_request()],
            "description": f"Exactly one of employee_ids, shorthand_names or search. Lists hold at most "
            f"{max_items} items (API_MAX_ITEMS) and the body at most API_MAX_BODY_BYTES bytes (413 beyond).",
        },
    }
