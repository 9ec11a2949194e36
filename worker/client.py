"""Coresignal Clean Employee API client. The only module that imports aiohttp's client.

One `aiohttp.ClientSession` per worker process, created at start-up. Every failure leaves this module
as a typed `worker.errors` exception; aiohttp's own exceptions never escape.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from config.logging import redact_text
from worker.errors import (
    AuthError,
    BadRequestError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    UpstreamRouteError,
    UpstreamUnavailableError,
)

COLLECT_PATH = "/v2/employee_clean/collect/"
SEARCH_PATH = "/v2/employee_clean/search/es_dsl"
USER_AGENT = "employee-sync/0.1"


class ResponseObserver(Protocol):
    """Told about every exchange (e.g. `worker.metrics.Metrics`); status None: no response at all."""

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None: ...


def endpoint_class_of(path: str) -> str:
    """The rate-limit class of an API path, as a metric label (never the path: it holds ids)."""
    if path.startswith(COLLECT_PATH):
        return "collect"
    if path.startswith(SEARCH_PATH):
        return "search"
    return "other"


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def credits_remaining(self) -> int | None:
        raw = self.headers.get("x-credits-remaining")
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of an ES-DSL search: employee ids and the cursor to the next page (None: last)."""

    ids: list[int]
    next_after: str | None
    total_results: int | None
    total_pages: int | None
    credits_remaining: int | None


@dataclass(frozen=True, slots=True)
class Profile:
    """A collected employee profile and what the response said about our account."""

    employee_id: int
    data: dict[str, Any]
    credits_remaining: int | None


# A Retry-After longer than this is clamped: one header must not stall the fleet for hours (a far-future
# date, a typo). Matches the limiter's RETRY_AFTER_CAP_S default; callers may pass their own cap.
RETRY_AFTER_CAP_S = 120.0


def parse_retry_after(
    value: str | None, *, now: datetime | None = None, cap_s: float = RETRY_AFTER_CAP_S
) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110 §10.2.3).

    Never raises. None when the header is absent or unusable (garbage, negative, `inf`, `nan`);
    otherwise a finite value in [0, cap_s]. A date in the past means "now" (0).
    """
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        seconds: float | None = float(text)
    except ValueError:
        seconds = _seconds_until(text, now or datetime.now(UTC))
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap_s)


def _seconds_until(http_date: str, now: datetime) -> float | None:
    try:
        when = parsedate_to_datetime(http_date)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    # `-0000` (and a missing zone) parse to a naive datetime: RFC 5322 says that is UTC.
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True, slots=True)
class UnparsedBody:
    """An error body that is not JSON (an HTML page, a proxy's text), kept as text for the message."""

    text: str


ROUTE_404_HINT = (
    "HTTP 404 without the API's not-found answer, so nothing is tombstoned: "
    "is CORESIGNAL_BASE_URL right (it must end in /cdapi)?"
)


def is_api_not_found(response: ApiResponse) -> bool:
    """Is this 404 the API's own "no such employee", rather than a route 404 on the way to it?

    Only that answer may tombstone a profile. A wrong base URL (no `/cdapi`), a proxy or an HTML
    error page also answers 404, and taking those at their word tombstones the whole mirror. The API's
    answer is its error envelope `{"detail": "<text>"}` (spec §6) from an endpoint that served our key,
    and every such response carries `x-credits-remaining` (spec §2; the simulator does the same). A
    route 404 is answered before any endpoint sees the key, so it carries no credit balance.
    """
    body = response.body
    return (
        response.status == 404
        and isinstance(body, dict)
        and isinstance(body.get("detail"), str)
        and response.credits_remaining is not None
    )


# Upstream words in an exception message end up in logs, dead-letters and run errors (MongoDB, the
# CLI, the API): keep them short, and redact before cutting so a secret across the cut leaves nothing.
UPSTREAM_TEXT_MAX_CHARS = 300
_ERROR_BODY_MAX_BYTES = 4096


def upstream_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Text from upstream, fit for an exception message: secrets and URL passwords redacted, one line,
    at most UPSTREAM_TEXT_MAX_CHARS characters."""
    clean = " ".join(redact_text(text, secrets).split())
    if len(clean) <= UPSTREAM_TEXT_MAX_CHARS:
        return clean
    return clean[: UPSTREAM_TEXT_MAX_CHARS - 1] + "…"


def _raw_detail(body: Any) -> str:
    if isinstance(body, UnparsedBody):
        return body.text or "empty body"
    if isinstance(body, dict):
        for field in ("detail", "message", "error"):
            value = body.get(field)
            if isinstance(value, str):
                return value
            if value is not None:  # e.g. a validation error list
                return json.dumps(value, default=str)
    return "no detail"


def raise_for_status(
    response: ApiResponse,
    what: str,
    *,
    retry_after_cap_s: float = RETRY_AFTER_CAP_S,
    secrets: Iterable[str] = (),
) -> None:
    """Map an upstream status to the exception tree; 2xx passes. `secrets` never reach the message."""
    status = response.status
    if 200 <= status < 300:
        return
    if 300 <= status < 400:  # never followed (see CoresignalClient.request)
        location = upstream_text(response.headers.get("location", "nowhere"), secrets)
        raise UpstreamRouteError(
            f"{what}: HTTP {status} redirect to {location} not followed: the API key goes to "
            "CORESIGNAL_BASE_URL only; is CORESIGNAL_BASE_URL right?"
        )
    said = upstream_text(_raw_detail(response.body), secrets)
    detail = f"{what}: HTTP {status}: {said}"
    if status == 429:
        raise RateLimitedError(
            detail, parse_retry_after(response.headers.get("retry-after"), cap_s=retry_after_cap_s)
        )
    if status >= 500 or status == 408:
        raise UpstreamUnavailableError(detail)
    if status in (401, 403):
        raise AuthError(detail, status)
    if status == 402:
        raise OutOfCreditsError(detail, status)
    if status == 404:
        if is_api_not_found(response):
            raise NotFoundError(detail, status)
        raise UpstreamRouteError(f"{what}: {ROUTE_404_HINT} (upstream said: {said})")
    raise BadRequestError(detail, status)


class _DroppedNotResent(aiohttp.ClientError):
    """A dropped connection, re-raised as a type aiohttp's resend loop lets through (review #21)."""


async def _one_request_per_call(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """One call, one request on the wire: one rate-limit slot must never carry two requests.

    aiohttp 3.14 sends an idempotent request (our GETs) a second time, once, when the connection
    drops before the response starts: `ClientSession._request` sets `retry_persistent_connection`
    for IDEMPOTENT_METHODS and, on ClientOSError / ServerDisconnectedError from the middleware chain,
    loops again (`continue`). There is no public switch for it (`_retry_connection` is private). The
    first request may have been served and charged, and the resend goes out without a slot. The loop
    wraps the middleware chain, so re-raising here as another ClientError ends the call; the job's
    retry policy then decides, through the limiter. Refused connections (ClientConnectorError) are
    never resent by aiohttp and pass through unchanged.
    """
    try:
        return await handler(request)
    except aiohttp.ClientConnectorError:
        raise
    except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
        raise _DroppedNotResent(f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc


class CoresignalClient:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        observer: ResponseObserver | None = None,
        *,
        retry_after_cap_s: float = RETRY_AFTER_CAP_S,
        secrets: Iterable[str] = (),
    ) -> None:
        """`secrets`: never shown in an exception message (`open` adds the API key)."""
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._observer = observer
        self._retry_after_cap_s = retry_after_cap_s
        self._secrets = tuple(s for s in secrets if s)

    @classmethod
    def open(
        cls,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        limit: int = 100,
        observer: ResponseObserver | None = None,
        retry_after_cap_s: float = RETRY_AFTER_CAP_S,
        secrets: Iterable[str] = (),
    ) -> CoresignalClient:
        """`secrets`: more text never to show in an exception message (e.g. `Settings.secrets()`)."""
        session = aiohttp.ClientSession(
            headers={"apikey": api_key, "accept": "application/json", "user-agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=limit),
            raise_for_status=False,
            middlewares=(_one_request_per_call,),
        )
        return cls(
            session,
            base_url,
            observer,
            retry_after_cap_s=retry_after_cap_s,
            secrets=(api_key, *secrets),
        )

    async def close(self) -> None:
        await self._session.close()

    async def collect(self, key: str) -> Profile:
        """GET collect/{key}: key is an employee id, a shorthand name or a full profile URL."""
        path = COLLECT_PATH + quote(key, safe="")
        response = await self.request("GET", path)
        self._raise_for_status(response, f"collect {key}")
        body = response.body
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            raise UpstreamUnavailableError(f"collect {key}: malformed profile body")
        return Profile(int(body["id"]), body, response.credits_remaining)

    async def search(
        self, body: Mapping[str, Any], *, after: str | None = None, items_per_page: int = 1000
    ) -> SearchPage:
        """POST search/es_dsl: the same body on every page, the cursor in `?after=`."""
        params = {"items_per_page": str(items_per_page)}
        if after is not None:
            params["after"] = after
        response = await self.request("POST", SEARCH_PATH, json_body=body, params=params)
        self._raise_for_status(response, "search")
        ids = response.body
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise UpstreamUnavailableError("search: response body is not a list of employee ids")
        # An empty page ends the search even if a cursor came with it (clients do the same).
        next_after = response.headers.get("x-next-page-after") if ids else None
        return SearchPage(
            ids=list(ids),
            next_after=next_after or None,
            total_results=_int_header(response.headers, "x-total-results"),
            total_pages=_int_header(response.headers, "x-total-pages"),
            credits_remaining=response.credits_remaining,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> ApiResponse:
        """One HTTP exchange; transport failures and unparseable bodies become UpstreamUnavailableError."""
        url = URL(self._base_url + path, encoded=True)
        try:
            # No redirects: aiohttp would send the apikey header to any origin a 3xx names (it strips
            # only Authorization and cookies), and a followed redirect is a second request in one slot.
            async with self._session.request(
                method, url, json=json_body, params=params, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                # Lower-cased: header names are case-insensitive (HTTP/2 sends them lower-case).
                status, headers = resp.status, {k.lower(): v for k, v in resp.headers.items()}
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._observe(path, None, None)
            what = str(exc) if isinstance(exc, _DroppedNotResent) else f"{type(exc).__name__}: {exc}"
            said = upstream_text(what.rstrip(": "), self._secrets)
            raise UpstreamUnavailableError(f"{method} {path}: {said}") from exc
        self._observe(path, status, _int_header(headers, "x-credits-remaining"))
        return ApiResponse(status, _decode(raw, status, path), headers)

    def _raise_for_status(self, response: ApiResponse, what: str) -> None:
        raise_for_status(response, what, retry_after_cap_s=self._retry_after_cap_s, secrets=self._secrets)

    def _observe(self, path: str, status: int | None, credits_remaining: int | None) -> None:
        if self._observer is not None:
            self._observer.observe_response(endpoint_class_of(path), status, credits_remaining)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _decode(raw: bytes, status: int, path: str) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        if 200 <= status < 300:
            raise UpstreamUnavailableError(f"{path}: response body is not valid JSON") from exc
        return UnparsedBody(raw[:_ERROR_BODY_MAX_BYTES].decode("utf-8", "replace"))
