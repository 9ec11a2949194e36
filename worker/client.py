"""Coresignal Clean Employee API client. The only module that imports aiohttp's client.

One `aiohttp.ClientSession` per worker process, created at start-up. Every failure leaves this module
as a typed `worker.errors` exception; aiohttp's own exceptions never escape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol
from urllib.parse import quote

import aiohttp
from yarl import URL

from worker.errors import (
    AuthError,
    BadRequestError,
    NotFoundError,
    OutOfCreditsError,
    RateLimitedError,
    SubscriptionInitializingError,
    SubscriptionNotFoundError,
    SubscriptionRenewalError,
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


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _detail(body: Any) -> str:
    if isinstance(body, dict):
        for field in ("detail", "message", "error"):
            if isinstance(body.get(field), str):
                return str(body[field])
    return "no detail"


def raise_for_status(response: ApiResponse, what: str) -> None:
    """Map an upstream status to the exception tree; 2xx passes."""
    status = response.status
    if 200 <= status < 300:
        return
    detail = f"{what}: HTTP {status}: {_detail(response.body)}"
    if status == 429:
        raise RateLimitedError(detail, parse_retry_after(response.headers.get("Retry-After")))
    if status >= 500 or status == 408:
        raise UpstreamUnavailableError(detail)
    if status in (401, 403):
        raise AuthError(detail, status)
    if status == 402:
        raise OutOfCreditsError(detail, status)
    if status == 404:
        raise NotFoundError(detail, status)
    raise BadRequestError(detail, status)


class CoresignalClient:
    def __init__(
        self, session: aiohttp.ClientSession, base_url: str, observer: ResponseObserver | None = None
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._observer = observer

    @classmethod
    def open(
        cls,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float,
        limit: int = 100,
        observer: ResponseObserver | None = None,
    ) -> CoresignalClient:
        session = aiohttp.ClientSession(
            headers={"apikey": api_key, "accept": "application/json", "user-agent": USER_AGENT},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=limit),
            raise_for_status=False,
        )
        return cls(session, base_url, observer)

    async def close(self) -> None:
        await self._session.close()

    async def collect(self, key: str) -> Profile:
        """GET collect/{key}: key is an employee id, a shorthand name or a full profile URL."""
        path = COLLECT_PATH + quote(key, safe="")
        response = await self.request("GET", path)
        raise_for_status(response, f"collect {key}")
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
        raise_for_status(response, "search")
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
            async with self._session.request(method, url, json=json_body, params=params) as resp:
                raw = await resp.read()
                status, headers = resp.status, dict(resp.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._observe(path, None, None)
            raise UpstreamUnavailableError(
                f"{method} {path}: {type(exc).__name__}: {exc}".rstrip(": ")
            ) from exc
        self._observe(path, status, _int_header(headers, "x-credits-remaining"))
        return ApiResponse(status, _decode(raw, status, path), headers)

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
        return {"detail": raw[:200].decode("utf-8", "replace")}


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


def raise_for_subscription(response: ApiResponse, what: str, *, renewing: bool = False) -> None:
    status = response.status
    detail = f"{what}: HTTP {status}: {_detail(response.body)}"
    if status == 404:
        raise SubscriptionNotFoundError(detail, status)
    if status == 409:
        raise SubscriptionInitializingError(detail)
    if status == 400 and renewing:
        raise SubscriptionRenewalError(detail, status)
    raise_for_status(response, what)


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
        raise_for_subscription(response, "create subscription")
        return SubscriptionInfo.parse(response.body, "create subscription")

    async def list_subscriptions(self, *, expired: bool = False, page: int = 1) -> list[SubscriptionInfo]:
        """One page (about 1000) of this key's active (with expired=True: expired) subscriptions."""
        params = {"expired": "true" if expired else "false", "page": str(page)}
        response = await self._client.request("GET", SUBSCRIPTIONS_PATH, params=params)
        raise_for_subscription(response, "list subscriptions")
        if not isinstance(response.body, list):
            raise UpstreamUnavailableError("list subscriptions: response body is not a list")
        return [SubscriptionInfo.parse(item, "list subscriptions") for item in response.body]

    async def get_subscription(self, subscription_id: str) -> SubscriptionInfo:
        what = f"get subscription {subscription_id}"
        response = await self._client.request("GET", _subscription_path(subscription_id))
        raise_for_subscription(response, what)
        return SubscriptionInfo.parse(response.body, what)

    async def renew_subscription(self, subscription_id: str) -> SubscriptionInfo:
        what = f"renew subscription {subscription_id}"
        response = await self._client.request("POST", _subscription_path(subscription_id) + "/renew")
        raise_for_subscription(response, what, renewing=True)
        return SubscriptionInfo.parse(response.body, what)

    async def delete_subscription(self, subscription_id: str) -> None:
        response = await self._client.request("DELETE", _subscription_path(subscription_id))
        raise_for_subscription(response, f"delete subscription {subscription_id}")


def _subscription_path(subscription_id: str) -> str:
    return f"{SUBSCRIPTIONS_PATH}/{quote(subscription_id, safe='')}"


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
