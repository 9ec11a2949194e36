"""Compiles the Elasticsearch query DSL subset of `POST /v2/employee_clean/search/es_dsl`.

`compile_body` turns a parsed request body into a `CompiledQuery`: a predicate and a relevance
score over one profile dict (spec §5), plus the requested sort. `check_limits` enforces the
documented size limits (spec §3.1); the handler calls it before compiling.

Scores are deliberately simple and deterministic, not BM25: full-text leaves score the number of
query tokens they found, other leaves 1.0; a bool adds up its matching `must` and `should`
clauses, and scores a constant 1.0 when it has neither; `nested` averages its matching items.

Choices where ES and the vendor docs leave room (the fields themselves are in `dsl_fields`):
- text fields are analysed as lowercase word tokens; `term` on them compares single tokens;
- `wildcard` is case-sensitive on keyword and `.exact` fields (unless `case_insensitive`),
  case-insensitive on text fields, where it is matched against each token, as ES does;
- a clause on `experience.*` outside a `nested` query is valid but matches nothing, as in ES;
- date strings without a time or zone mean midnight UTC; `now` math supports y/M/w/d/h/m/s
  but not rounding (`now/d`), which is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from simulator.dsl_base import Ctx, Doc, Eval, QueryError
from simulator.dsl_fields import NESTED_PATHS
from simulator.dsl_leaves import (
    compile_exists,
    compile_match,
    compile_match_all,
    compile_match_none,
    compile_match_phrase,
    compile_range,
    compile_term,
    compile_terms,
    compile_wildcard,
)
from simulator.dsl_query_string import compile_query_string

__all__ = [
    "CompiledQuery",
    "QueryError",
    "SortMode",
    "check_limits",
    "compile_body",
    "leaf_count",
    "parse_sort",
]

type SortMode = Literal["id", "_score", "default"]

MAX_QUERY_CHARS = 15_000
MAX_CLAUSES = 1024

# The API answers with ids only, so these keys are accepted and have no effect (spec §3.1).
_NO_OP_KEYS = frozenset({"size", "_source", "from", "track_total_hits"})
_BOOL_OCCURS = ("must", "filter", "should", "must_not")
_BOOL_KEYS = frozenset({*_BOOL_OCCURS, "minimum_should_match", "boost", "_name"})
_NESTED_KEYS = frozenset({"path", "query", "score_mode", "inner_hits", "boost", "_name"})
_SCORE_MODES: dict[str, Callable[[list[float]], float]] = {
    "avg": lambda scores: sum(scores) / len(scores),
    "max": max,
    "min": min,
    "sum": sum,
    "none": lambda _scores: 0.0,
}
_SORTS: dict[str, tuple[SortMode, str]] = {"id": ("id", "asc"), "_score": ("_score", "desc")}
_MSM = re.compile(r"(-?)(\d{1,9})(%?)")


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    predicate: Callable[[Mapping[str, Any]], bool]
    score: Callable[[Mapping[str, Any]], float]  # meaningful for documents the predicate accepts
    sort: SortMode
    # None for a document that does not match, else its score: one pass where both are needed.
    evaluate: Callable[[Mapping[str, Any]], float | None]


def compile_body(body: object, *, now: datetime | None = None) -> CompiledQuery:
    """`now` anchors date math such as "now-1y"; it defaults to the current UTC time."""
    if not isinstance(body, dict):
        raise QueryError(422, "request body must be a JSON object")
    for key in body:
        if key in ("aggs", "aggregations"):
            raise QueryError(400, "aggregations are not supported")
        if key not in ("query", "sort") and key not in _NO_OP_KEYS:
            raise QueryError(400, f"unsupported request key '{key}'")
    if "query" not in body:
        raise QueryError(400, "'query' is required")
    evaluate = compile_clause(body["query"], Ctx(None, now or datetime.now(UTC), "query"))
    sort = parse_sort(body["sort"]) if "sort" in body else "default"
    return CompiledQuery(
        predicate=lambda doc: evaluate(doc) is not None,
        score=lambda doc: evaluate(doc) or 0.0,
        sort=sort,
        evaluate=evaluate,
    )


def parse_sort(raw: object) -> SortMode:
    """`"id"`, `["id"]`, `[{"id": "asc"}]`, `[{"id": {"order": "asc"}}]`; likewise `_score`."""
    item = raw[0] if isinstance(raw, list) and len(raw) == 1 else raw
    if isinstance(item, str) and item in _SORTS:
        return _SORTS[item][0]
    if isinstance(item, dict) and len(item) == 1:
        ((name, order),) = item.items()
        if isinstance(order, dict) and set(order) == {"order"}:
            order = order["order"]
        if name in _SORTS and isinstance(order, str) and order.lower() == _SORTS[name][1]:
            return _SORTS[name][0]
    raise QueryError(400, f'unsupported sort {raw!r}: use ["id"] (ascending) or ["_score"]')


def check_limits(raw_body_text: str, body: object) -> None:
    if len(raw_body_text) > MAX_QUERY_CHARS:
        raise QueryError(400, f"query payload exceeds {MAX_QUERY_CHARS} characters")
    count = leaf_count(body)
    if count > MAX_CLAUSES:
        raise QueryError(400, f"query has {count} clauses, more than the limit of {MAX_CLAUSES}")


def leaf_count(body: object) -> int:
    """Counts every leaf clause plus every bool sub-clause that is itself compound.

    A flat bool of N terms counts N. Iterative, and tolerant of malformed input, because it runs
    before the body has been validated.
    """
    if not isinstance(body, dict):
        return 0
    count = 0
    stack: list[tuple[object, bool]] = [(body.get("query"), False)]
    while stack:
        node, in_bool = stack.pop()
        if not isinstance(node, dict) or len(node) != 1:
            continue
        ((name, spec),) = node.items()
        if name == "bool" and isinstance(spec, dict):
            count += int(in_bool)
            for occur in _BOOL_OCCURS:
                children = spec.get(occur, [])
                for child in children if isinstance(children, list) else [children]:
                    stack.append((child, True))
        elif name == "nested" and isinstance(spec, dict):
            count += int(in_bool)
            stack.append((spec.get("query"), False))
        else:
            count += 1
    return count


def compile_clause(node: object, ctx: Ctx) -> Eval:
    if not isinstance(node, dict) or len(node) != 1:
        ctx.fail("a query clause must be an object with exactly one key")
    ((name, spec),) = node.items()
    compiler = _COMPILERS.get(name)
    if compiler is None:
        ctx.fail(f"unsupported query clause '{name}'")
    return compiler(spec, ctx.at(f".{name}"))


def _compile_bool(spec: object, ctx: Ctx) -> Eval:
    if not isinstance(spec, dict):
        ctx.fail("bool takes an object")
    unknown = sorted(set(spec) - _BOOL_KEYS)
    if unknown:
        ctx.fail(f"unsupported bool key '{unknown[0]}'")
    inner = ctx.deeper("", ctx.scope)
    must, filters, should, must_not = (
        _clause_list(spec.get(occur, []), inner.at(f".{occur}")) for occur in _BOOL_OCCURS
    )
    default = 0 if must or filters else 1
    required = _minimum_should_match(spec.get("minimum_should_match"), len(should), default, ctx)
    return _bool_eval(must, filters, should, must_not, required)


def _bool_eval(
    must: list[Eval], filters: list[Eval], should: list[Eval], must_not: list[Eval], required: int
) -> Eval:
    constant = not must and not should

    # Plain loops rather than any(): this runs once per profile per search.
    def evaluate(doc: Doc) -> float | None:
        for clause in filters:
            if clause(doc) is None:
                return None
        for clause in must_not:
            if clause(doc) is not None:
                return None
        total, matched = 0.0, 0
        for clause in must:
            score = clause(doc)
            if score is None:
                return None
            total += score
        for clause in should:
            score = clause(doc)
            if score is not None:
                total, matched = total + score, matched + 1
        if matched < required:
            return None
        return 1.0 if constant else total

    return evaluate


def _clause_list(raw: object, ctx: Ctx) -> list[Eval]:
    if isinstance(raw, list):
        return [compile_clause(node, ctx.at(f"[{i}]")) for i, node in enumerate(raw)]
    return [compile_clause(raw, ctx)]


def _minimum_should_match(raw: object, should: int, default: int, ctx: Ctx) -> int:
    """ES semantics: "N", "-N" (all but N), "P%" and "-P%" (rounded down), no "3<90%" forms.

    Not capped at the number of should clauses: asking for more than exist matches nothing.
    """
    if raw is None:
        return default if should else 0
    parsed = _MSM.fullmatch(raw.strip()) if isinstance(raw, str) else None
    if isinstance(raw, int) and not isinstance(raw, bool):
        wanted = raw
    elif parsed:
        amount = int(parsed[2]) * should // 100 if parsed[3] else int(parsed[2])
        wanted = -amount if parsed[1] else amount
    else:
        ctx.at(".minimum_should_match").fail(f"unsupported minimum_should_match {raw!r}")
    required = max(0, should + wanted if wanted < 0 else wanted)
    # A Lucene bool without must/filter never matches a document that matches none of its
    # should clauses, whatever minimum_should_match says.
    return max(required, 1) if should and default else required


def _compile_nested(spec: object, ctx: Ctx) -> Eval:
    if not isinstance(spec, dict) or "path" not in spec or "query" not in spec:
        ctx.fail('nested takes {"path": ..., "query": ...}')
    unknown = sorted(set(spec) - _NESTED_KEYS)
    if unknown:
        ctx.fail(f"unsupported nested key '{unknown[0]}'")
    path = spec["path"]
    if not isinstance(path, str) or path not in NESTED_PATHS:
        ctx.fail(f"unknown nested path {path!r}")
    if ctx.scope is not None:
        ctx.fail(f"nested path '{path}' cannot be used inside nested path '{ctx.scope}'")
    mode = spec.get("score_mode", "avg")
    combine = _SCORE_MODES.get(mode) if isinstance(mode, str) else None
    if combine is None:
        ctx.fail(f"unsupported score_mode {mode!r}")
    inner = compile_clause(spec["query"], ctx.deeper(".query", path))

    def evaluate(doc: Doc) -> float | None:
        items = doc.get(path)
        if isinstance(items, Mapping):
            items = [items]
        if not isinstance(items, list):
            return None
        # One item must satisfy the whole inner query: this is what nested exists for.
        scores = [s for item in items if (s := _try(inner, item)) is not None]
        return combine(scores) if scores else None

    return evaluate


def _try(inner: Eval, item: object) -> float | None:
    return inner(item) if isinstance(item, Mapping) else None


_COMPILERS: dict[str, Callable[[object, Ctx], Eval]] = {
    "bool": _compile_bool,
    "nested": _compile_nested,
    "term": compile_term,
    "terms": compile_terms,
    "match": compile_match,
    "match_phrase": compile_match_phrase,
    "query_string": compile_query_string,
    "range": compile_range,
    "exists": compile_exists,
    "wildcard": compile_wildcard,
    "match_all": compile_match_all,
    "match_none": compile_match_none,
}
