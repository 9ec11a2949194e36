"""Property tests: no input, however odd, gets a 5xx; every answer is the 202 shape or the error envelope.

Bodies are arbitrary JSON values and near-valid run requests (wrong types, huge integers, nested
junk, strings with control characters and lone surrogates, both kinds at once, empty lists), sent
as JSON, as invalid UTF-8, or truncated mid-document; paths and query strings get arbitrary text.
Bounded (700 examples in all, no deadline): about 15 s on an idle 2-core machine, 35 s on a busy one.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from api_support import Api, MakeApi, is_error_envelope, is_run_created
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from config import Settings
from tests.conftest import with_overrides

# Hundreds of generated requests: the full suite (CI) runs them, the fast loop does not.
pytestmark = pytest.mark.slow

MAX_ITEMS = 8  # small, so some generated lists cross it (413)
FUZZ = settings(
    max_examples=200,
    deadline=None,
    # One app and one database for all examples: a run created by one example does not matter to another.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Every code point, including C0/C1 controls and unpaired surrogates.
any_char = st.characters(codec=None, categories=None, exclude_categories=())
SPECIMENS = [
    "", " ", "#comment", "1\n2", "\r", "\x00", "\ud800", "12345", "\uff10\uff11", "\u0663\u0664", "9" * 30,
    "-1", "1e5", "ada-lovelace", "https://www.linkedin.com/in/ada-lovelace/", "linkedin.com/in/%00x",
    "in/x/y", "http://evil.example/in/ada", "%F0%9F%98%80%ED%A0%80", "a" * 300,
]  # fmt: skip
tricky_text = st.one_of(st.text(any_char, max_size=24), st.sampled_from(SPECIMENS))
huge_int = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**4000]),
)
# floats() includes NaN and ±inf: json.dumps writes them as NaN/Infinity, which the API refuses (400).
scalars = st.one_of(st.none(), st.booleans(), huge_int, st.floats(), tricky_text)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=12,
)
list_item = st.one_of(huge_int, tricky_text, st.integers(1, 10**6).map(str), json_values)
item_lists = st.lists(list_item, max_size=MAX_ITEMS + 3)
search_bodies = st.fixed_dictionaries(
    {"query": st.one_of(st.just({"match_all": {}}), st.dictionaries(tricky_text, json_values, max_size=3))},
    optional={"sort": json_values, "aggs": json_values, "size": huge_int, "from": json_values},
)
# Exactly one kind, as a well-meaning client sends it, but with junk items: these reach run creation.
one_kind = st.one_of(
    st.fixed_dictionaries({"employee_ids": item_lists}),
    st.fixed_dictionaries({"shorthand_names": item_lists}),
    st.fixed_dictionaries({"search": search_bodies}, optional={"max_profiles": huge_int}),
)
# Any mix of the known fields (and an unknown one), each of any type.
near_valid = st.fixed_dictionaries(
    {},
    optional={
        "employee_ids": item_lists | json_values,
        "shorthand_names": item_lists | json_values,
        "search": search_bodies | json_values,
        "max_profiles": huge_int | json_values,
        "extra": json_values,
    },
)


@st.composite
def request_bodies(draw: st.DrawFn) -> bytes:
    """A body as bytes: usually JSON text (ASCII-escaped or raw UTF-8), sometimes broken on purpose."""
    value = draw(st.one_of(one_kind, one_kind, near_valid, json_values))
    try:
        text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    except ValueError:  # an integer too long to print: send it as raw bytes instead
        return draw(st.binary(max_size=64))
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes invalid UTF-8
    mangle = draw(st.sampled_from(["none", "none", "none", "truncate", "binary"]))
    if mangle == "truncate":
        return raw[: draw(st.integers(0, len(raw)))]
    if mangle == "binary":
        return draw(st.binary(max_size=128))
    return raw


@pytest.fixture
async def fuzz_api(settings: Settings, make_api: MakeApi) -> Api:
    return await make_api(with_overrides(settings, api_max_items=MAX_ITEMS))


@settings(FUZZ, max_examples=300)
@given(body=request_bodies())
async def test_post_runs_never_answers_5xx_and_always_in_shape(fuzz_api: Api, body: bytes) -> None:
    reply = await fuzz_api.request(
        "POST", "/v1/runs", data=body, headers={"Content-Type": "application/json"}
    )

    assert reply.status in {202, 400, 413, 422}, (reply.status, reply.text)
    answer: Any = reply.body
    event(f"{reply.status} {answer.get('kind') or answer['error']['code']}")  # --hypothesis-show-statistics
    if reply.status == 202:
        assert is_run_created(answer), answer
        assert all(0 <= r["index"] <= MAX_ITEMS for r in answer["rejected"])
        assert answer["accepted"] + answer.get("duplicates", 0) + len(answer["rejected"]) <= MAX_ITEMS
        # A list run has at least one usable item; a list with none is a 422 and creates nothing.
        assert answer["kind"] == "search" or answer["accepted"] + answer["duplicates"] >= 1, answer
    else:
        assert is_error_envelope(answer), answer


@FUZZ
@given(
    segment=st.text(any_char, max_size=40),
    route=st.sampled_from(["/v1/runs/{}", "/v1/runs/{}/pause", "/v1/runs/{}/cancel", "/v1/employees/{}"]),
)
@example(segment=".", route="/v1/runs/{}/pause")  # found by a CI-length run on 2026-12-03
@example(segment="..", route="/v1/runs/{}/cancel")
async def test_odd_path_ids_never_answer_5xx(fuzz_api: Api, segment: str, route: str) -> None:
    path = route.format(quote(segment.encode("utf-8", "surrogatepass"), safe=""))
    method = "GET" if route.count("/") == 3 else "POST"

    reply = await fuzz_api.request(method, path)

    allowed = {200, 400, 404, 409}
    if segment in {".", ".."}:
        # A dot segment is no id: the URL means another path (RFC 3986), and /v1/runs/./pause is
        # /v1/runs/pause, which exists for GET only: 405, with the error envelope like the rest.
        allowed.add(405)
    assert reply.status in allowed, (path, reply.status, reply.text)
    if reply.status != 200:
        assert is_error_envelope(reply.body), reply.text


@FUZZ
@given(
    params=st.lists(
        st.tuples(st.sampled_from(["state", "limit", "cursor", "other"]), st.text(any_char, max_size=30)),
        max_size=3,
    )
)
async def test_odd_list_queries_never_answer_5xx(fuzz_api: Api, params: list[tuple[str, str]]) -> None:
    query = "&".join(f"{k}={quote(v.encode('utf-8', 'surrogatepass'), safe='')}" for k, v in params)

    reply = await fuzz_api.get(f"/v1/runs?{query}")

    assert reply.status in {200, 400}, (query, reply.status, reply.text)
    answer = reply.body
    assert is_error_envelope(answer) if reply.status == 400 else set(answer) == {"runs", "next_cursor"}
