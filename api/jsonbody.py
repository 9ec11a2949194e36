"""Reading a request body as JSON, bounded and strict, with errors a person can act on.

Refused here, before anything else looks at the value: a body over `API_MAX_BODY_BYTES` (413, checked
while streaming, so an oversized body is never held in memory whole), text that is not UTF-8,
malformed JSON (with line and column), `NaN`/`Infinity` (not JSON), duplicate keys (ambiguous: which
one wins differs between parsers, and Elasticsearch refuses them), integers too long for Python to
convert, nesting deeper than `MAX_JSON_DEPTH` (no recursion anywhere later can blow up) and strings
holding unpaired UTF-16 surrogates (`"\\ud800"`: valid JSON, but not storable in MongoDB or Redis).
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from aiohttp import web

from api.errors import ApiError

MAX_JSON_DEPTH = 64
_CHUNK_BYTES = 64 * 1024


class _Refused(ValueError):
    """Raised from the json hooks; carries a finished message."""


async def read_json(request: web.Request, max_bytes: int) -> object:
    return parse_json(await read_body(request, max_bytes))


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    length = request.content_length
    if length is not None and length > max_bytes:
        _too_large(max_bytes)
    body = bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK_BYTES):
        body += chunk
        if len(body) > max_bytes:  # chunked uploads announce no length: count as they come
            _too_large(max_bytes)
    return bytes(body)


def _too_large(max_bytes: int) -> NoReturn:
    raise ApiError(
        413,
        "too_large",
        f"request body is larger than {max_bytes} bytes (API_MAX_BODY_BYTES)",
        {"limit_bytes": max_bytes},
    )


def parse_json(raw: bytes) -> object:
    if not raw.strip():
        raise _invalid("request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"request body is not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        details = {"line": exc.lineno, "column": exc.colno}
        message = f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise _invalid(message, details) from exc
    except _Refused as exc:
        raise _invalid(str(exc)) from exc
    except RecursionError as exc:
        raise _invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # Python refuses to convert integers of more than 4300 digits
        raise _invalid("a number in the body is too long (more than 4300 digits)") from exc
    check_structure(value)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"duplicate key {_quote(key)} in a JSON object")
        result[key] = value
    return result


def _no_constant(name: str) -> NoReturn:
    raise _Refused(f"{name} is not a JSON value")


def check_structure(value: object) -> None:
    """Depth and text checks, iteratively: a hostile document cannot exhaust the stack here."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise _invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, dict):
            for key, item in node.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid("a string in the body holds an unpaired UTF-16 surrogate escape") from exc


def _quote(text: str, limit: int = 60) -> str:
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return json.dumps(shown)


def _invalid(message: str, details: object = None) -> ApiError:
    return ApiError(400, "invalid_json", message, details)
