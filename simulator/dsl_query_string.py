"""The `query_string` clause: Lucene-like syntax reduced to what sync clients actually send.

Supported: `field:value`, `field:"a phrase"`, `field:(a OR b)`, bare terms against
`default_field`, `AND`/`OR`/`NOT` (also `&&`, `||`, `!`) with NOT > AND > OR, parentheses,
`*`/`?` wildcards, `field:*` (exists) and backslash escapes. Fuzzy (`~`), boosts (`^`), regex
(`/.../`), ranges (`[a TO b]`, `>x`) and `+`/`-` prefixes are rejected with a 400 rather than
being half-understood.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulator.dsl_base import MAX_DEPTH, Ctx, Doc, Eval
from simulator.dsl_fields import FIELDS
from simulator.dsl_leaves import exists_eval, match_eval, phrase_eval, wildcard_eval

type TokKind = Literal["word", "phrase", "field", "and", "or", "not", "(", ")"]

_OPTIONS = frozenset({"query", "default_field", "default_operator", "boost", "_name"})
_UNSUPPORTED = frozenset("~^/[]{}")
_OPERATORS: dict[str, TokKind] = {"AND": "and", "OR": "or", "NOT": "not"}
_SYMBOLS: dict[str, TokKind] = {"&&": "and", "||": "or", "!": "not", "(": "(", ")": ")"}
_PRIMARY_START = frozenset({"word", "phrase", "field", "("})


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: TokKind
    text: str
    pattern: str | None = None  # set when an unquoted word holds unescaped wildcards


def compile_query_string(spec: object, ctx: Ctx) -> Eval:
    if not isinstance(spec, dict):
        ctx.fail("query_string takes an object")
    unknown = sorted(set(spec) - _OPTIONS)
    if unknown:
        ctx.fail(f"unsupported option '{unknown[0]}'")
    query = spec.get("query")
    if not isinstance(query, str):
        ctx.fail("query_string needs a 'query' string")
    default_field = spec.get("default_field")
    if default_field is not None and default_field not in FIELDS:
        ctx.fail(f"unknown field '{default_field}'")
    operator = spec.get("default_operator", "or")
    if not isinstance(operator, str) or operator.lower() not in ("and", "or"):
        ctx.fail(f"default_operator must be 'AND' or 'OR', got {operator!r}")
    parser = _Parser(_lex(query, ctx), ctx, operator.lower() == "and")
    return parser.parse(default_field)


def _lex(source: str, ctx: Ctx) -> list[_Tok]:
    tokens: list[_Tok] = []
    i = 0
    while i < len(source):
        symbol = source[i : i + 2] if source[i : i + 2] in _SYMBOLS else source[i]
        if source[i].isspace():
            i += 1
        elif symbol in _SYMBOLS:
            tokens.append(_Tok(_SYMBOLS[symbol], symbol))
            i += len(symbol)
        elif source[i] == '"':
            text, i = _read_phrase(source, i + 1, ctx)
            tokens.append(_Tok("phrase", text))
        else:
            i = _read_word(source, i, tokens, ctx)
    return tokens


def _read_phrase(source: str, i: int, ctx: Ctx) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(source) and source[i] != '"':
        if source[i] == "\\" and i + 1 < len(source):
            i += 1
        chars.append(source[i])
        i += 1
    if i >= len(source):
        ctx.fail("unterminated quoted phrase in query_string")
    return "".join(chars), i + 1


def _read_word(source: str, i: int, tokens: list[_Tok], ctx: Ctx) -> int:
    """Reads one bare word (a `field:` prefix is split off as its own token); returns the end."""
    chars: list[tuple[str, bool]] = []  # (character, was escaped)
    while i < len(source) and not source[i].isspace() and source[i] not in '()"':
        escaped = source[i] == "\\" and i + 1 < len(source)
        i += 1 if escaped else 0
        chars.append((source[i], escaped))
        i += 1
    if chars and not chars[0][1] and chars[0][0] in "+-":
        ctx.fail(f"unsupported query_string syntax in '{''.join(c for c, _ in chars)}'")
    colon = next((k for k, (c, esc) in enumerate(chars) if c == ":" and not esc), None)
    if colon is not None:
        tokens.append(_Tok("field", "".join(c for c, _ in chars[:colon])))
        chars = chars[colon + 1 :]
    if chars:
        tokens.append(_word(chars, colon is None, ctx))
    return i


def _word(chars: list[tuple[str, bool]], may_be_operator: bool, ctx: Ctx) -> _Tok:
    text = "".join(c for c, _ in chars)
    bare = [c for c, esc in chars if not esc]
    if may_be_operator and len(bare) == len(chars) and text in _OPERATORS:
        return _Tok(_OPERATORS[text], text)
    if _UNSUPPORTED.intersection(bare) or (not chars[0][1] and chars[0][0] in "+-<>="):
        ctx.fail(f"unsupported query_string syntax in '{text}'")
    if "*" not in bare and "?" not in bare:
        return _Tok("word", text)
    pattern = "".join(f"\\{c}" if esc else c for c, esc in chars)
    return _Tok("word", text, pattern)


class _Parser:
    """Recursive descent over the token list; every method consumes what it parses."""

    def __init__(self, tokens: list[_Tok], ctx: Ctx, default_and: bool) -> None:
        self.tokens = tokens
        self.pos = 0
        self.ctx = ctx
        self.default_and = default_and

    def parse(self, field: str | None) -> Eval:
        result = self.or_expr(field, 0)
        if self.pos < len(self.tokens):
            self.ctx.fail(f"unexpected '{self.tokens[self.pos].text}' in query_string")
        return result

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Tok:
        token = self.peek()
        if token is None:
            self.ctx.fail("unexpected end of query_string")
        self.pos += 1
        return token

    def or_expr(self, field: str | None, depth: int) -> Eval:
        parts = [self.and_expr(field, depth)]
        while (token := self.peek()) is not None and (
            token.kind == "or" or (not self.default_and and token.kind in _PRIMARY_START)
        ):
            if token.kind == "or":
                self.pos += 1
            parts.append(self.and_expr(field, depth))
        return parts[0] if len(parts) == 1 else _any_of(parts)

    def and_expr(self, field: str | None, depth: int) -> Eval:
        parts = [self.not_expr(field, depth)]
        # "a NOT b" reads as "a AND NOT b", as in Lucene, whatever the default operator.
        while (token := self.peek()) is not None and (
            token.kind in ("and", "not") or (self.default_and and token.kind in _PRIMARY_START)
        ):
            if token.kind == "and":
                self.pos += 1
            parts.append(self.not_expr(field, depth))
        return parts[0] if len(parts) == 1 else _all_of(parts)

    def not_expr(self, field: str | None, depth: int) -> Eval:
        if (token := self.peek()) is not None and token.kind == "not":
            self.pos += 1
            inner = self.not_expr(field, depth)
            return lambda doc: 0.0 if inner(doc) is None else None
        return self.primary(field, depth)

    def primary(self, field: str | None, depth: int) -> Eval:
        token = self.take()
        if token.kind == "field":
            field, token = token.text, self.take()
        if token.kind == "(":
            if depth >= MAX_DEPTH:
                self.ctx.fail(f"query_string nests parentheses deeper than {MAX_DEPTH}")
            inner = self.or_expr(field, depth + 1)
            if (closing := self.peek()) is None or closing.kind != ")":
                self.ctx.fail("expected ')' in query_string")
            self.pos += 1
            return inner
        if token.kind not in ("word", "phrase"):
            self.ctx.fail(f"unexpected '{token.text}' in query_string")
        if field is None:
            self.ctx.fail(f"query_string term '{token.text}' names no field and no default_field")
        return self.term(field, token)

    def term(self, field: str, token: _Tok) -> Eval:
        if token.kind == "phrase":
            return phrase_eval(field, token.text, self.ctx)
        if token.pattern == "*":
            return exists_eval(field, self.ctx)
        if token.pattern is not None:
            return wildcard_eval(field, token.pattern, self.ctx, case_insensitive=False)
        return match_eval(field, token.text, self.ctx, require_all=self.default_and)


def _all_of(parts: list[Eval]) -> Eval:
    def evaluate(doc: Doc) -> float | None:
        total = 0.0
        for part in parts:
            score = part(doc)
            if score is None:
                return None
            total += score
        return total

    return evaluate


def _any_of(parts: list[Eval]) -> Eval:
    def evaluate(doc: Doc) -> float | None:
        scores = [s for part in parts if (s := part(doc)) is not None]
        return sum(scores) if scores else None

    return evaluate
