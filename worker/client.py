"""Coresignal Clean Employee API client. The only module that imports aiohttp's client.

One `aiohttp.ClientSession` per worker process, created at start-up. Every failure leaves this module
as a typed `worker.errors` exception; aiohttp's own exceptions never escape.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from config.logging import redact_text
from worker.errors import (
    AuthError,
    BadRequestError,
    DataRequestConflictError,
    DataRequestNotFoundError,
    DataRequestTooLargeError,
    InputError,
    NoMatchingIdsError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    SubmitOutcomeUnknownError,
    SubscriptionInitializingError,
    SubscriptionNotFoundError,
    SubscriptionRenewalError,
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

    async def warm_up(self, connections: int, *, timeout_s: float = 5.0) -> int:
        """Open up to `connections` keep-alive connections before the first rate-limited request.

        A request that has to open its connection reaches the API later than one on a warm
        connection, by the TCP (and, in production, TLS) handshake. A granted slot cannot absorb
        that: the request 54 slots later, on a warm connection, lands within the same sliding
        second. So the pool is filled first, with requests that carry an empty API key: they cannot
        count against this key's rate budget or credits (they name no key), and the API answers
        them 401. Nothing is observed or raised; the warm connections opened are returned.
        """
        url = URL(self._base_url + COLLECT_PATH + "0", encoded=True)
        timeout = aiohttp.ClientTimeout(total=timeout_s)

        async def one() -> bool:
            try:
                async with self._session.get(
                    url, headers={"apikey": ""}, timeout=timeout, allow_redirects=False
                ) as resp:
                    await resp.read()
                return True
            except (aiohttp.ClientError, TimeoutError):
                return False

        opened = await asyncio.gather(*(one() for _ in range(connections)))
        return sum(opened)

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

    @property
    def secrets(self) -> tuple[str, ...]:
        """What this client never lets into an error message (its API key, and any given)."""
        return self._secrets

    def _raise_for_status(self, response: ApiResponse, what: str) -> None:
        raise_for_status(response, what, retry_after_cap_s=self._retry_after_cap_s, secrets=self._secrets)

    def _observe(self, path: str, status: int | None, credits_remaining: int | None) -> None:
        if self._observer is not None:
            self._observer.observe_response(endpoint_class_of(path), status, credits_remaining)

    # == bulk collect (spec §8): data requests ====================================================
    # A submit POST is a billing event: nothing here ever sends one twice. A POST that went out
    # but got no usable answer raises SubmitOutcomeUnknownError (it may have been billed); one
    # that provably never left (connection refused) raises plain UpstreamUnavailableError.
    # Statuses map to the tree in `worker.errors` through `raise_for_bulk_status`.

    async def submit_id_file(self, ids: Sequence[int], webhook_url: str | None = None) -> str:
        """POST data_requests/employee_clean/id_file (multipart `ids_file`); returns the request_id."""
        if not ids:
            raise InputError("submit_id_file: no ids")
        if len(ids) > MAX_BULK_IDS:
            raise DataRequestTooLargeError(
                f"submit_id_file: {len(ids)} ids, more than {MAX_BULK_IDS} per data request (not sent)"
            )
        form = aiohttp.FormData()
        content = "".join(f"{int(i)}\n" for i in ids).encode()
        form.add_field("ids_file", content, filename="ids.csv", content_type="text/csv")
        if webhook_url is not None:
            form.add_field("webhook_url", webhook_url)
        return await self._submit(BULK_SUBMIT_PATH + "id_file", data=form)

    async def submit_es_dsl(
        self, body: Mapping[str, Any], limit: int | None = None, webhook_url: str | None = None
    ) -> str:
        """POST data_requests/employee_clean/es_dsl; `body` is a search body (`{"query": {...}}`,
        the same one `search` and `count` take). Returns the request_id."""
        if "query" not in body:
            raise InputError('submit_es_dsl: the body needs a "query"')
        if limit is not None and (isinstance(limit, bool) or limit < 1):
            raise InputError(f"submit_es_dsl: limit must be a positive integer, got {limit!r}")
        payload: dict[str, Any] = {"es_dsl_query": {"query": body["query"]}}
        if limit is not None:
            payload["limit"] = limit
        if webhook_url is not None:
            payload["webhook_url"] = webhook_url
        return await self._submit(BULK_SUBMIT_PATH + "es_dsl", json_body=payload)

    async def count(self, body: Mapping[str, Any]) -> int:
        """How many profiles a search body matches (`x-total-results` of a one-item page): what a
        bulk es_dsl request would cost, learnt before paying for it. Costs one search request."""
        page = await self.search(body, items_per_page=1)
        if page.total_results is None:
            raise UpstreamUnavailableError("count: search response without x-total-results")
        return page.total_results

    async def poll_files(self, request_id: str) -> list[str] | None:
        """GET data_requests/{id}/files: the file names once ready, None while still processing."""
        path = BULK_FILES_PATH.format(quote(request_id, safe=""))
        response = await self._bulk_exchange("GET", path, submit=False)
        raise_for_bulk_status(
            response, f"files of data request {request_id}", phase="files", secrets=self._secrets
        )
        if response.status == 202:
            return None
        names = response.body.get("data_request_files") if isinstance(response.body, dict) else None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise UpstreamUnavailableError(f"files of data request {request_id}: malformed body")
        # "If you do not see a file name, the data request is not ready" (§8.2).
        return list(names) or None

    async def download_file(
        self, request_id: str, name: str, *, chunk_bytes: int = 64 * 1024, read_timeout_s: float | None = None
    ) -> AsyncIterator[bytes]:
        """GET data_requests/{id}/files/{name}: the file's raw bytes (still gzip), chunk by chunk.

        aiohttp's automatic decompression is off, so the bytes are what was stored whatever the
        Content-Encoding header says; `worker.bulk_files.FileDecoder` detects gzip itself. No
        total timeout (a file may be large): each read may take `read_timeout_s` (default: the
        session's timeout). Iterate to the end or `aclose()` it (`contextlib.aclosing`).
        """
        path = BULK_FILES_PATH.format(quote(request_id, safe="")) + "/" + quote(name, safe="/")
        what = f"download {name} of data request {request_id}"
        per_read_s = read_timeout_s if read_timeout_s is not None else self._session.timeout.total
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=per_read_s, sock_read=per_read_s)
        url = URL(self._base_url + path, encoded=True)
        try:
            async with self._session.get(url, auto_decompress=False, timeout=timeout) as resp:
                self._observe_bulk(resp.status, _int_header(resp.headers, "x-credits-remaining"))
                if resp.status != 200:
                    raw = await resp.read()
                    response = ApiResponse(resp.status, _error_body(raw), dict(resp.headers))
                    raise_for_bulk_status(response, what, phase="download", secrets=self._secrets)
                    raise UpstreamUnavailableError(f"{what}: HTTP {resp.status} instead of the file")
                async for chunk in resp.content.iter_chunked(chunk_bytes):
                    yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamUnavailableError(_transport_message(what, exc)) from exc

    async def _submit(self, path: str, *, data: Any = None, json_body: Any = None) -> str:
        response = await self._bulk_exchange("POST", path, data=data, json_body=json_body, submit=True)
        raise_for_bulk_status(response, "submit data request", phase="submit", secrets=self._secrets)
        request_id = response.body.get("request_id") if isinstance(response.body, dict) else None
        if not isinstance(request_id, str) or not request_id:
            raise SubmitOutcomeUnknownError(
                f"submit data request: HTTP {response.status} without a request_id (it may be billed)"
            )
        return request_id

    async def _bulk_exchange(
        self, method: str, path: str, *, submit: bool, data: Any = None, json_body: Any = None
    ) -> ApiResponse:
        """One bulk request/response, read whole (submits and file lists are small)."""
        url = URL(self._base_url + path, encoded=True)
        try:
            async with self._session.request(method, url, data=data, json=json_body) as resp:
                raw = await resp.read()
                status, headers = resp.status, dict(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._observe_bulk(None, None)
            message = _transport_message(f"{method} {path}", exc)
            never_sent = isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)
            if submit and not never_sent:
                raise SubmitOutcomeUnknownError(message + " (the data request may have been billed)") from exc
            raise UpstreamUnavailableError(message) from exc
        self._observe_bulk(status, _int_header(headers, "x-credits-remaining"))
        if 200 <= status < 300:
            try:
                return ApiResponse(status, _decode(raw, status, path), headers)
            except UpstreamUnavailableError as exc:
                if submit:
                    raise SubmitOutcomeUnknownError(f"{exc} (the data request may have been billed)") from exc
                raise
        return ApiResponse(status, _error_body(raw), headers)

    def _observe_bulk(self, status: int | None, credits_remaining: int | None) -> None:
        if self._observer is not None:
            self._observer.observe_response("bulk", status, credits_remaining)


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


# == bulk collect helpers ==================================================================
BULK_SUBMIT_PATH = "/v2/data_requests/employee_clean/"
BULK_FILES_PATH = "/v2/data_requests/{}/files"
MAX_BULK_IDS = 10_000  # per data request (spec §8.1, since 2025-04-02)


def raise_for_bulk_status(
    response: ApiResponse, what: str, *, phase: str, secrets: Iterable[str] = ()
) -> None:
    """Map a bulk status to the exception tree (`phase`: "submit", "files" or "download"); 2xx passes.

    409 → DataRequestConflictError; 404 → NoMatchingIdsError at submit, else DataRequestNotFoundError;
    400/422 "too many ids" → DataRequestTooLargeError; the rest as `raise_for_status` (402 →
    OutOfCreditsError, 429 → RateLimitedError, 5xx → UpstreamUnavailableError, other 4xx → BadRequestError).
    """
    status = response.status
    if 200 <= status < 300:
        return
    detail = f"{what}: HTTP {status}: {upstream_text(_raw_detail(response.body), secrets)}"
    if status == 409:
        raise DataRequestConflictError(detail, status)
    if status == 404:
        raise (NoMatchingIdsError if phase == "submit" else DataRequestNotFoundError)(detail, status)
    if status in (400, 422) and "too many ids" in detail.lower():
        raise DataRequestTooLargeError(detail, status)
    raise_for_status(response, what, secrets=secrets)


def _error_body(raw: bytes) -> Any:
    """A non-2xx body: the API's JSON error if it is one, else its first bytes as the detail."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return {"detail": raw[:200].decode("utf-8", "replace")}


def _transport_message(what: str, exc: BaseException) -> str:
    return f"{what}: {type(exc).__name__}: {exc}".rstrip(": ")


# -- Webhook subscriptions (spec §9) ---------------------------------------------------------------
# Appended as its own section: `SubscriptionClient(client)` wraps a CoresignalClient (its
# session, base URL and observer), so the class above stays as it is. Statuses map onto
# worker.errors: 404 SubscriptionNotFoundError, 409 SubscriptionInitializingError (transient),
# 400 on renew SubscriptionRenewalError (create anew), other 400/422 BadRequestError (e.g. an
# invalid webhook URL, a date filter in the query); 401/402/429/5xx as for every call
# (raise_for_status). The API allows 9 subscription requests per minute per key: callers pace
# them, and a 429 is a RateLimitedError like any other.

SUBSCRIPTIONS_PATH = "/v2/subscriptions"
# Experience changes use the newer path family (rev. B); the simulator also serves rev. A
# (/v2/subscriptions/experience_changes/{selection}). Profile changes: spec §9.3b (a GUESS there).
SUBSCRIPTION_CREATE_PATHS = {
    "experience": SUBSCRIPTIONS_PATH + "/experience_changes/employee_clean/",
    "profile": SUBSCRIPTIONS_PATH + "/employee_clean/",
}

type SubscriptionKind = Literal["experience", "profile"]
# A list of employee ids, an ES-DSL body ({"query": ...}), or "all".
type SubscriptionSelection = Sequence[int] | Mapping[str, Any] | Literal["all"]


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """A subscription as the API described it; `body` keeps every field (details, dates)."""

    id: str
    status: str
    created_at: str | None
    expiring_at: str | None
    body: Mapping[str, Any]

    @classmethod
    def parse(cls, body: Any, what: str) -> SubscriptionInfo:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise UpstreamUnavailableError(f"{what}: malformed subscription body")
        return cls(
            id=body["id"],
            status=str(body.get("status")),
            created_at=_opt_str(body.get("created_at")),
            expiring_at=_opt_str(body.get("expiring_at")),
            body=body,
        )


def subscription_request(
    kind: SubscriptionKind, selection: SubscriptionSelection, webhook_url: str, fields: Sequence[str] | None
) -> tuple[str, dict[str, Any]]:
    """The path and JSON body that create a subscription (pure; raises ValueError if malformed)."""
    if kind not in SUBSCRIPTION_CREATE_PATHS:
        raise ValueError(f"unknown subscription type {kind!r}")
    body: dict[str, Any] = {"webhook_url": webhook_url}
    if selection == "all":
        name = "all"
    elif isinstance(selection, Mapping):
        name, body["es_dsl_query"] = "es_dsl", dict(selection)
    elif isinstance(selection, Sequence) and not isinstance(selection, str):
        name, body["ids"] = "ids", [int(i) for i in selection]
    else:
        raise ValueError("selection must be employee ids, an ES-DSL body or 'all'")
    if fields is not None:
        if kind != "profile":
            raise ValueError("fields only apply to profile-change subscriptions")
        body["fields"] = list(fields)
    return SUBSCRIPTION_CREATE_PATHS[kind] + name, body


def raise_for_subscription(
    response: ApiResponse, what: str, *, renewing: bool = False, secrets: Iterable[str] = ()
) -> None:
    status = response.status
    detail = f"{what}: HTTP {status}: {upstream_text(_raw_detail(response.body), secrets)}"
    if status == 404:
        raise SubscriptionNotFoundError(detail, status)
    if status == 409:
        raise SubscriptionInitializingError(detail)
    if status == 400 and renewing:
        raise SubscriptionRenewalError(detail, status)
    raise_for_status(response, what, secrets=secrets)


class SubscriptionClient:
    """Subscription management over a CoresignalClient: `SubscriptionClient(client).list_subscriptions()`."""

    def __init__(self, client: CoresignalClient) -> None:
        self._client = client

    async def create_subscription(
        self,
        kind: SubscriptionKind,
        selection: SubscriptionSelection,
        webhook_url: str,
        *,
        fields: Sequence[str] | None = None,
    ) -> SubscriptionInfo:
        """POST a new subscription: experience changes (§9.1) or profile changes (§9.3b)."""
        path, body = subscription_request(kind, selection, webhook_url, fields)
        response = await self._client.request("POST", path, json_body=body)
        raise_for_subscription(response, "create subscription", secrets=self._client.secrets)
        return SubscriptionInfo.parse(response.body, "create subscription")

    async def list_subscriptions(self, *, expired: bool = False, page: int = 1) -> list[SubscriptionInfo]:
        """One page (about 1000) of this key's active (with expired=True: expired) subscriptions."""
        params = {"expired": "true" if expired else "false", "page": str(page)}
        response = await self._client.request("GET", SUBSCRIPTIONS_PATH, params=params)
        raise_for_subscription(response, "list subscriptions", secrets=self._client.secrets)
        if not isinstance(response.body, list):
            raise UpstreamUnavailableError("list subscriptions: response body is not a list")
        return [SubscriptionInfo.parse(item, "list subscriptions") for item in response.body]

    async def get_subscription(self, subscription_id: str) -> SubscriptionInfo:
        what = f"get subscription {subscription_id}"
        response = await self._client.request("GET", _subscription_path(subscription_id))
        raise_for_subscription(response, what, secrets=self._client.secrets)
        return SubscriptionInfo.parse(response.body, what)

    async def renew_subscription(self, subscription_id: str) -> SubscriptionInfo:
        what = f"renew subscription {subscription_id}"
        response = await self._client.request("POST", _subscription_path(subscription_id) + "/renew")
        raise_for_subscription(response, what, renewing=True, secrets=self._client.secrets)
        return SubscriptionInfo.parse(response.body, what)

    async def delete_subscription(self, subscription_id: str) -> None:
        response = await self._client.request("DELETE", _subscription_path(subscription_id))
        raise_for_subscription(
            response, f"delete subscription {subscription_id}", secrets=self._client.secrets
        )


def _subscription_path(subscription_id: str) -> str:
    return f"{SUBSCRIPTIONS_PATH}/{quote(subscription_id, safe='')}"


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
