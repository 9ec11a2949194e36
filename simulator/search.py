"""`POST /cdapi/v2/employee_clean/search/es_dsl` (spec §3).

Request: an Elasticsearch body (`query`, optional `sort`, no-op keys such as `size`); query-string
parameters `after` (the previous page's `x-next-page-after`) and `items_per_page` (default and
maximum 1000, larger values clamped).

200: a JSON array of employee ids, with `x-total-results`, `x-total-pages`, `x-items-per-page`,
and `x-next-page-after` when there is a next page (`200 []` with totals 0 for no match). Billed
`search_cost` credits (0 makes search free).

Refusals, none of them billed: 401/429/402 and injected faults from `admit`; 422 for a body that
is not JSON or not a JSON object; 400 for a payload over 15 000 characters, more than 1 024
clauses, anything the DSL compiler rejects (unknown fields or paths, bad sort...), a bad
`items_per_page` or a bad cursor.

The query is evaluated over the whole population in a worker thread, so the event loop keeps
stamping arrival times for the rate limiter. The sorted match list is cached per (query, sort,
population generation) in `state.search_cache`, so following the cursors of one query costs one
scan and each page only a binary search.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from simulator.admission import INSUFFICIENT_CREDITS, admit
from simulator.dsl import MAX_QUERY_CHARS, CompiledQuery, QueryError, check_limits, compile_body
from simulator.population import Snapshot
from simulator.responses import json_error, json_response
from simulator.search_paging import Match, clamp_items_per_page, page_sorted, sort_matches
from simulator.state import STATE

SEARCH_ROUTE = "/cdapi/v2/employee_clean/search/es_dsl"
_YIELD_EVERY_S = 0.001


async def search(request: web.Request) -> web.Response:
    state = request.app[STATE]
    cost = state.config.search_cost
    refusal = await admit(state, request, "search", cost)
    if refusal is not None:
        return refusal
    try:
        raw_text = await _body_text(request)
        body = _parse_json(raw_text)
        check_limits(raw_text, body)
        # Date math ("now-7d") is on the world clock, which `POST /_sim/advance` moves.
        compiled = compile_body(body, now=state.world_clock.now())
        items_per_page = clamp_items_per_page(request.query.get("items_per_page"))
        after = request.query.get("after")
        # Checks the cursor before paying for a scan: it is read even with no matches.
        page_sorted([], compiled.sort, after, items_per_page)
    except QueryError as exc:
        return json_error(exc.status, exc.reason)

    snapshot = state.population.snapshot()
    key = (_canonical(body["query"]), compiled.sort, snapshot.generation)
    ordered = await state.search_cache.matches(key, lambda: scan(snapshot, compiled))
    result = page_sorted(ordered, compiled.sort, after, items_per_page)
    if not state.charge(cost):
        return json_error(402, INSUFFICIENT_CREDITS)
    headers = {
        "x-total-results": str(result.total_results),
        "x-total-pages": str(result.total_pages),
        "x-items-per-page": str(items_per_page),
    }
    if result.next_after is not None:
        headers["x-next-page-after"] = result.next_after
    return json_response(result.ids, headers=headers)


def scan(snapshot: Snapshot, compiled: CompiledQuery) -> list[Match]:
    """Every matching profile as (id, score, last_updated), in the query's sort order.

    CPU-bound, run in a worker thread. It offers the GIL to the event loop every millisecond:
    left to the interpreter's 5 ms switch interval, each socket operation the loop makes while a
    cold scan runs waits up to 5 ms for the GIL, and arrival stamps and responses lag behind.
    """
    matches: list[Match] = []
    next_yield = time.perf_counter() + _YIELD_EVERY_S
    for profile in snapshot.profiles():
        if (now := time.perf_counter()) >= next_yield:
            time.sleep(0)  # releases the GIL; a waiting event loop thread takes it
            next_yield = now + _YIELD_EVERY_S
        score = compiled.evaluate(profile)
        if score is not None:
            matches.append((profile["id"], score, profile.get("last_updated")))
    return sort_matches(matches, compiled.sort)


async def _body_text(request: web.Request) -> str:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        # Past aiohttp's body limit (1 MiB), far past the API's own: the same answer as just past it.
        raise QueryError(400, f"query payload exceeds {MAX_QUERY_CHARS} characters") from None
    try:
        return raw.decode(request.charset or "utf-8")
    except (UnicodeDecodeError, LookupError):
        raise QueryError(422, "request body is not valid UTF-8 text") from None


def _parse_json(text: str) -> dict[str, Any]:
    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not valid JSON")

    try:
        body = json.loads(text, parse_constant=reject)
    except (ValueError, RecursionError) as exc:
        raise QueryError(422, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise QueryError(422, "request body must be a JSON object")
    return body


def _canonical(query: object) -> str:
    """One text per query, whatever the key order or spacing the client sent."""
    return json.dumps(query, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def add_routes(app: web.Application) -> None:
    app.router.add_post(SEARCH_ROUTE, search)
