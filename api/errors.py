"""The one error envelope, and the middleware that turns every failure into it.

Every 4xx/5xx body is `{"error": {"code", "message", "details"}}`. Handlers raise `ApiError` for what
they expect; the middleware also translates aiohttp's own HTTP errors (unknown route, wrong method),
the exception tree (an `InputError` that got this far is the client's; a `TransientError` is a
MongoDB/Redis outage, 503) and anything unexpected (500 `internal`, logged with its traceback).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import structlog
from aiohttp import web

from worker.errors import InputError, RedisUnavailableError, StoreUnavailableError, TransientError

log = structlog.get_logger("employee_sync.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Clients back off at least this long after a 503: the outage is ours, not theirs.
RETRY_AFTER_S = 5
# Headers of aiohttp's own errors that a client needs (405 says which methods are allowed).
_KEPT_HEADERS = ("Allow",)


class ApiError(Exception):
    """A request the API refuses on purpose: status, machine-readable code, human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: object = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message, self.details, self.headers)


def dumps(data: object) -> bytes:
    """JSON for responses: datetimes as ISO 8601; any other odd BSON value as text, never a 500."""
    text = json.dumps(data, default=_default, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a stored document: \u-escape everything
        return json.dumps(data, default=_default, separators=(",", ":")).encode("ascii")


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def json_response(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json", headers=headers)


def error_body(code: str, message: str, details: object = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: object = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    return json_response(error_body(code, message, details), status, headers)


def unavailable_message(exc: TransientError) -> str:
    """Which backing service is away, without its connection details (hosts, credentials)."""
    if isinstance(exc, StoreUnavailableError):
        return "MongoDB is not answering; try again later"
    if isinstance(exc, RedisUnavailableError):
        return "Redis is not answering; try again later"
    return "a backing service is not answering; try again later"


def unavailable(exc: TransientError) -> web.Response:
    return error_response(
        503, "unavailable", unavailable_message(exc), headers={"Retry-After": str(RETRY_AFTER_S)}
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        return _from_http_exception(request, exc)
    except InputError as exc:  # a safety net: handlers translate these with a precise code
        return error_response(400, "invalid_input", str(exc))
    except TransientError as exc:
        log.warning("api.unavailable", method=request.method, path=request.path, error=str(exc))
        return unavailable(exc)
    except Exception:
        log.exception("api.internal_error", method=request.method, path=request.path)
        return error_response(500, "internal", "internal error; it has been logged")


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    """aiohttp's own errors (no such route, wrong method, body too large) in our envelope."""
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    if exc.status == 404:
        message = f"no such route: {request.method} {request.path}"
        return error_response(404, "not_found", message, headers=headers)
    if exc.status == 405:
        message = f"{request.method} is not allowed on {request.path}"
        return error_response(405, "method_not_allowed", message, headers=headers)
    if exc.status == 413:
        return error_response(413, "too_large", "request body too large", headers=headers)
    code = re.sub(r"[^a-z0-9]+", "_", exc.reason.lower()).strip("_") or "error"
    if exc.status >= 500:
        log.error("api.http_error", method=request.method, path=request.path, status=exc.status)
    return error_response(exc.status, code, exc.reason, headers=headers)
