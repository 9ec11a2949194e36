"""Bearer-token authentication for every route except the probes and the OpenAPI document.

Tokens come from `API_TOKENS` (comma-separated, so a token can be rotated by running two at once).
A presented token is compared with *every* accepted token in constant time, with no early exit, so
neither a match's position nor a prefix leaks through timing. Every refusal gets the same body,
whatever was wrong, so a client cannot probe which part failed. Tokens are never logged.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from aiohttp import web
from aiohttp.typedefs import Middleware

from api.errors import Handler, error_response
from api.ui import UI_PATHS

# Open routes: liveness/readiness probes (orchestrators send no credentials), the API's own
# description, and the dashboard's page and static files (no data in them: the page asks for a token).
# /metrics is *not* open: Prometheus sends `authorization: {credentials: ...}`.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", *UI_PATHS})
# The webhook receiver: the upstream sends no credentials; the token in the path is the capability.
PUBLIC_PREFIXES = ("/v1/webhooks/coresignal/",)
UNAUTHORIZED_MESSAGE = "missing or invalid bearer token"


class TokenChecker:
    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [_raw(t) for t in tokens if t]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def accepts(self, authorization: str | None) -> bool:
        presented = _bearer_token(authorization)
        if presented is None:
            return False
        matched = False
        for token in self._tokens:  # every token, always: the time taken does not depend on which
            matched |= hmac.compare_digest(presented, token)
        return matched


def _raw(text: str) -> bytes:
    # aiohttp decodes header bytes with surrogateescape; this gives the client's bytes back.
    return text.encode("utf-8", "surrogateescape")


def _bearer_token(authorization: str | None) -> bytes | None:
    """The token of `Bearer <token>` (the scheme is case-insensitive, RFC 7235), else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return _raw(token)


def unauthorized() -> web.Response:
    return error_response(401, "unauthorized", UNAUTHORIZED_MESSAGE, headers={"WWW-Authenticate": "Bearer"})


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def auth_middleware(checker: TokenChecker) -> Middleware:
    """A middleware enforcing `checker` (or nothing at all when auth was disabled on purpose)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not checker.enabled or is_public(request.path):
            return await handler(request)
        if not checker.accepts(request.headers.get("Authorization")):
            return unauthorized()
        return await handler(request)

    return middleware
