"""JSON responses in the API's shape: bodies are JSON, errors are `{"detail": "<text>"}` (§6)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

JSON = "application/json"


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # Compact separators: profiles are the bulk of the traffic in benchmarks.
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return web.Response(text=body, status=status, content_type=JSON, headers=headers)


def json_error(status: int, detail: Any, headers: Mapping[str, str] | None = None) -> web.Response:
    return json_response({"detail": detail}, status=status, headers=headers)


def raw_json(body: bytes, status: int = 200) -> web.Response:
    """A body sent verbatim under a JSON content type, valid or not."""
    return web.Response(body=body, status=status, content_type=JSON)
