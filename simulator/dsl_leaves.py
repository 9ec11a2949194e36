"""Leaf clauses of the es_dsl subset: term, terms, match, match_phrase, range, exists, wildcard.

Each `compile_*` takes the clause body (the value under the clause name) and returns an `Eval`.
The `*_eval` builders below them are shared with `dsl_query_string`, whose terms mean the same.
Scores: a full-text clause scores the number of query tokens it found, any other leaf 1.0.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any

from simulator.dsl_base import Ctx, Doc, Eval
from simulator.dsl_fields import FIELDS, Field, Kind
from simulator.dsl_values import (
    analyse,
    as_keyword,
    as_number,
    compile_glob,
    parse_date,
    parse_date_bound,
    value_tokens,
)

type Reader = Callable[[Doc], list[Any]]
type ValueTest = Callable[[Any], bool]

_IGNORED = frozenset({"boost", "_name"})  # accepted for compatibility; they change nothing here
_RANGE_OPS = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


def _nothing(_doc: Doc) -> list[Any]:
    return []


def bind(name: object, ctx: Ctx) -> tuple[Field, Reader]:
    if not isinstance(name, str):
        ctx.fail("field name must be a string")
    field = FIELDS.get(name)
    if field is None:
        ctx.fail(f"unknown field '{name}'")
    # ES stores nested items as hidden separate documents, so a clause outside the field's nested
    # query (or inside another one) sees no value at all: it is valid but never matches.
    return field, field.read if field.path == ctx.scope else _nothing


def _single_field(spec: object, ctx: Ctx, extra: frozenset[str] = frozenset()) -> tuple[str, Any]:
    if not isinstance(spec, dict):
        ctx.fail("expected an object naming one field")
    fields = [key for key in spec if key not in extra]
    if len(fields) != 1:
        ctx.fail("expected exactly one field")
    return fields[0], spec[fields[0]]


def _options(raw: object, main: str, allowed: Iterable[str], ctx: Ctx) -> dict[str, Any]:
    """Accepts the `{"field": value}` shorthand and the `{"field": {main: value}}` long form."""
    if not isinstance(raw, dict):
        return {main: raw}
    unknown = sorted(set(raw) - {main, *allowed} - _IGNORED)
    if unknown:
        ctx.fail(f"unsupported option '{unknown[0]}'")
    if main not in raw:
        ctx.fail(f"missing '{main}'")
    return raw


def _flag(options: dict[str, Any], name: str, ctx: Ctx) -> bool:
    value = options.get(name, False)
    if not isinstance(value, bool):
        ctx.fail(f"'{name}' must be true or false")
    return value


def _any_value(read: Reader, test: ValueTest) -> Eval:
    return lambda doc: 1.0 if any(test(value) for value in read(doc)) else None


def _equals(field: Field, raw: object, ctx: Ctx, *, fold: bool) -> ValueTest:
    """Whole-term equality as ES's term query sees it; on text fields, against each token."""
    if field.kind is Kind.NUMBER:
        number = as_number(raw)
        if number is None:
            ctx.fail(f"field '{field.name}' expects a number, got {raw!r}")
        return lambda value: as_number(value) == number
    if field.kind is Kind.DATE:
        moment = parse_date_bound(raw, ctx.now)
        if moment is None:
            ctx.fail(f"field '{field.name}' expects a date, got {raw!r}")
        return lambda value: parse_date(value) == moment
    text = as_keyword(raw)
    if text is None:
        ctx.fail(f"field '{field.name}' cannot be compared with {raw!r}")
    if fold:
        text = text.lower()
    if field.kind is Kind.TEXT:
        return lambda value: text in value_tokens(value)
    if fold:
        return lambda value: isinstance(value, str) and value.lower() == text
    return lambda value: as_keyword(value) == text


def compile_term(spec: object, ctx: Ctx) -> Eval:
    name, raw = _single_field(spec, ctx)
    field, read = bind(name, ctx)
    options = _options(raw, "value", ["case_insensitive"], ctx)
    fold = _flag(options, "case_insensitive", ctx)
    return _any_value(read, _equals(field, options["value"], ctx, fold=fold))


def compile_terms(spec: object, ctx: Ctx) -> Eval:
    name, raw = _single_field(spec, ctx, extra=_IGNORED)
    field, read = bind(name, ctx)
    if not isinstance(raw, list):
        ctx.fail(f"terms on '{name}' needs a list of values")
    tests = [_equals(field, value, ctx, fold=False) for value in raw]
    return _any_value(read, lambda value: any(test(value) for test in tests))


def match_eval(name: object, query: object, ctx: Ctx, *, require_all: bool) -> Eval:
    field, read = bind(name, ctx)
    if field.kind is not Kind.TEXT:
        # Keyword, number and date fields are not analysed: match is a whole-value comparison.
        return _any_value(read, _equals(field, query, ctx, fold=field.kind is Kind.FOLDED))
    wanted = tuple(dict.fromkeys(_query_tokens(query, ctx)))

    def evaluate(doc: Doc) -> float | None:
        present = {token for value in read(doc) for token in value_tokens(value)}
        hits = sum(1 for token in wanted if token in present)
        if hits == 0 or (require_all and hits < len(wanted)):
            return None
        return float(hits)

    return evaluate


def phrase_eval(name: object, query: object, ctx: Ctx) -> Eval:
    field, read = bind(name, ctx)
    if field.kind is not Kind.TEXT:
        return _any_value(read, _equals(field, query, ctx, fold=field.kind is Kind.FOLDED))
    wanted = _query_tokens(query, ctx)
    size = len(wanted)

    def contains(value: object) -> bool:
        # Array elements are checked one by one: ES's position gap keeps a phrase from
        # spanning two elements.
        tokens = value_tokens(value)
        return any(tokens[i : i + size] == wanted for i in range(len(tokens) - size + 1))

    def evaluate(doc: Doc) -> float | None:
        return float(size) if size and any(contains(v) for v in read(doc)) else None

    return evaluate


def _query_tokens(query: object, ctx: Ctx) -> tuple[str, ...]:
    text = as_keyword(query)
    if text is None:
        ctx.fail(f"query text must be a string, got {query!r}")
    return analyse(text)


def compile_match(spec: object, ctx: Ctx) -> Eval:
    name, raw = _single_field(spec, ctx)
    options = _options(raw, "query", ["operator"], ctx)
    op = options.get("operator", "or")
    if not isinstance(op, str) or op.lower() not in ("and", "or"):
        ctx.fail(f"operator must be 'and' or 'or', got {op!r}")
    return match_eval(name, options["query"], ctx, require_all=op.lower() == "and")


def compile_match_phrase(spec: object, ctx: Ctx) -> Eval:
    name, raw = _single_field(spec, ctx)
    return phrase_eval(name, _options(raw, "query", [], ctx)["query"], ctx)


def wildcard_eval(name: object, pattern: object, ctx: Ctx, *, case_insensitive: bool) -> Eval:
    field, read = bind(name, ctx)
    if field.kind in (Kind.NUMBER, Kind.DATE):
        ctx.fail(f"wildcard needs a text or keyword field, '{field.name}' is {field.kind.value}")
    if not isinstance(pattern, str):
        ctx.fail(f"wildcard pattern must be a string, got {pattern!r}")
    if field.kind is Kind.TEXT:
        # Text fields hold lowercase tokens, so the pattern is lowercased and matched per token.
        token_glob = compile_glob(pattern, fold=True)
        return _any_value(read, lambda v: any(token_glob(t) for t in value_tokens(v)))
    glob = compile_glob(pattern, fold=case_insensitive or field.kind is Kind.FOLDED)
    return _any_value(read, lambda v: isinstance(v, str) and glob(v))


def compile_wildcard(spec: object, ctx: Ctx) -> Eval:
    name, raw = _single_field(spec, ctx)
    options = _options(raw, "value", ["case_insensitive"], ctx)
    fold = _flag(options, "case_insensitive", ctx)
    return wildcard_eval(name, options["value"], ctx, case_insensitive=fold)


def exists_eval(name: object, ctx: Ctx) -> Eval:
    _field, read = bind(name, ctx)
    return _any_value(read, lambda value: value not in ("", []))


def compile_exists(spec: object, ctx: Ctx) -> Eval:
    if not isinstance(spec, dict) or set(spec) - _IGNORED != {"field"}:
        ctx.fail('exists takes {"field": "<name>"}')
    return exists_eval(spec["field"], ctx)


def compile_range(spec: object, ctx: Ctx) -> Eval:
    name, raw = _single_field(spec, ctx)
    field, read = bind(name, ctx)
    if not isinstance(raw, dict):
        ctx.fail(f"range on '{name}' needs an object of gt/gte/lt/lte bounds")
    unknown = sorted(set(raw) - set(_RANGE_OPS) - _IGNORED)
    if unknown:
        ctx.fail(f"unsupported range option '{unknown[0]}'")
    ops = [op for op in _RANGE_OPS if op in raw]
    bounds = [(_RANGE_OPS[op], _range_bound(field, op, raw[op], ctx)) for op in ops]
    keys = _range_keys(field)

    def evaluate(doc: Doc) -> float | None:
        for value in read(doc):
            if any(all(op(key, bound) for op, bound in bounds) for key in keys(value)):
                return 1.0
        return None

    return evaluate


def _range_bound(field: Field, op: str, raw: object, ctx: Ctx) -> Any:
    bound: Any
    if field.kind is Kind.NUMBER:
        bound = as_number(raw)
    elif field.kind is Kind.DATE:
        bound = parse_date_bound(raw, ctx.now)
    else:
        bound = as_keyword(raw)
    if bound is None:
        ctx.fail(f"invalid '{op}' bound {raw!r} for {field.kind.value} field '{field.name}'")
    return bound


def _range_keys(field: Field) -> Callable[[Any], Iterable[Any]]:
    """What a range compares per document value: numbers, instants, tokens or whole strings."""
    convert: Callable[[Any], Any]
    if field.kind is Kind.TEXT:
        return value_tokens
    if field.kind is Kind.NUMBER:
        convert = as_number
    elif field.kind is Kind.DATE:
        convert = parse_date
    else:
        convert = as_keyword
    return lambda value: () if (key := convert(value)) is None else (key,)


def compile_match_all(spec: object, ctx: Ctx) -> Eval:
    if not isinstance(spec, dict) or set(spec) - _IGNORED:
        ctx.fail("match_all takes an empty object")
    return lambda _doc: 1.0


def compile_match_none(spec: object, ctx: Ctx) -> Eval:
    if not isinstance(spec, dict) or set(spec) - _IGNORED:
        ctx.fail("match_none takes an empty object")
    return lambda _doc: None
