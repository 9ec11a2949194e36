"""Helpers for the HTTP API tests: a thin client over aiohttp's TestClient that returns parsed replies."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDictProxy

TOKEN = "api-token-0123456789abcdef0123"
ROTATED_TOKEN = "api-token-rotated-fedcba987654"
_UNSET: Any = object()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDictProxy[str]
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text)


class Api:
    """Sends `Authorization: Bearer TOKEN` unless told otherwise (token=None: no header at all)."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = _UNSET,
        data: bytes | str | None = None,
        token: str | None = TOKEN,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is not None and "Authorization" not in sent:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not _UNSET:
            data = json.dumps(json_body)
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(method, path, data=data, headers=sent) as resp:
            return Reply(resp.status, resp.headers, await resp.text())

    async def get(self, path: str, **kwargs: Any) -> Reply:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, body: Any = _UNSET, **kwargs: Any) -> Reply:
        return await self.request("POST", path, json_body=body, **kwargs)


MakeApi = Callable[..., Awaitable[Api]]


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    """The reply is the error envelope with this status and code; returns the inner error object."""
    assert reply.status == status, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    body = reply.body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return dict(error)


def is_error_envelope(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"error"}
        and isinstance(body["error"], dict)
        and set(body["error"]) == {"code", "message", "details"}
        and isinstance(body["error"]["code"], str)
        and isinstance(body["error"]["message"], str)
    )


def is_run_created(body: Any) -> bool:
    if not isinstance(body, dict) or not {"run_id", "accepted", "rejected"} <= set(body):
        return False
    rejected = body["rejected"]
    return (
        isinstance(body["run_id"], str)
        and isinstance(body["accepted"], int)
        and isinstance(rejected, list)
        and all(isinstance(r, dict) and set(r) == {"index", "value", "reason"} for r in rejected)
    )
