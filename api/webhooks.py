"""The webhook receiver and subscription management over HTTP.

POST /v1/webhooks/coresignal/{token}: public (the upstream sends no credentials); the token in the
path is the capability. Unknown token → 404 before the body is read; body over
WEBHOOK_MAX_BODY_BYTES (or more than WEBHOOK_MAX_NOTICES notices) → 413; not the documented
notice list → 400. Nothing is stored or queued for any of these. An accepted body is in the
MongoDB inbox before the 202 is sent (`jobs.webhooks.receive`).

/v1/subscriptions: create (201, the webhook URL with its token is shown this once), list, show,
renew, delete; each calls the upstream API (9 requests a minute per key).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from api.errors import ApiError, json_response
from api.jsonbody import read_body, read_json
from api.state import SERVICES, SETTINGS
from jobs import subscriptions, webhooks
from jobs.webhook_notices import (
    NoticeShapeError,
    TooManyNoticesError,
    parse_notices,
    plausible_token,
    same_hash,
    token_hash,
)
from worker.client import SubscriptionClient
from worker.errors import (
    BadRequestError,
    InputError,
    PermanentError,
    SubscriptionNotFoundError,
    TransientError,
)
from worker.runtime import Services

RECEIVER_ROUTE = "/v1/webhooks/coresignal/{token}"
MAX_SUBSCRIPTION_BODY_BYTES = 16 * 1024 * 1024  # an id list of a few hundred thousand ids
_ID_CHARS = 128


def add_webhook_routes(app: web.Application) -> None:
    app.router.add_post(RECEIVER_ROUTE, receive)
    app.router.add_post("/v1/subscriptions", create_subscription)
    app.router.add_get("/v1/subscriptions", list_subscriptions)
    app.router.add_get("/v1/subscriptions/{id}", show_subscription)
    app.router.add_post("/v1/subscriptions/{id}/renew", renew_subscription)
    app.router.add_delete("/v1/subscriptions/{id}", delete_subscription)


async def receive(request: web.Request) -> web.Response:
    metrics = request.app[SERVICES].metrics.webhooks
    try:
        response = await _receive(request)
    except ApiError as exc:
        metrics.observe_request(exc.status)
        raise
    except TransientError:
        metrics.observe_request(503)
        raise
    metrics.observe_request(response.status)
    return response


async def _receive(request: web.Request) -> web.Response:
    settings, services = request.app[SETTINGS], request.app[SERVICES]
    token = request.match_info["token"]
    hashed = token_hash(token)
    subscription = None
    if plausible_token(token):
        subscription = await services.store.webhooks.subscription_by_token_hash(hashed)
    if subscription is None or not same_hash(str(subscription.get("token_hash", "")), hashed):
        raise ApiError(404, "not_found", "no such webhook")
    try:
        body = await _read_bounded(request, settings.webhook_max_body_bytes)
        notices = parse_notices(body, settings.webhook_max_notices)
    except TooManyNoticesError as exc:
        raise ApiError(413, "too_large", str(exc)) from exc
    except NoticeShapeError as exc:
        raise ApiError(400, "invalid_body", str(exc)) from exc
    receipt = await webhooks.receive(services, subscription, body, notices)
    return json_response({"accepted": receipt.notices, "duplicate": receipt.duplicate}, 202)


async def _read_bounded(request: web.Request, max_bytes: int) -> bytes:
    try:
        return await read_body(request, max_bytes)
    except ApiError as exc:  # its message names API_MAX_BODY_BYTES; ours is another limit
        if exc.status != 413:
            raise
        message = f"body is larger than {max_bytes} bytes (WEBHOOK_MAX_BODY_BYTES)"
        raise ApiError(413, "too_large", message, {"limit_bytes": max_bytes}) from exc


# --- subscription management -------------------------------------------------------------


@asynccontextmanager
async def _upstream(services: Services) -> AsyncIterator[SubscriptionClient]:
    try:
        client = subscriptions.open_client(services)
    except ValueError as exc:  # no API key configured in this process
        raise ApiError(503, "unavailable", f"subscriptions need the upstream API: {exc}") from exc
    try:
        yield SubscriptionClient(client)
    except subscriptions.SubscriptionMissingError as exc:
        raise ApiError(404, "subscription_not_found", str(exc)) from exc
    except SubscriptionNotFoundError as exc:
        raise ApiError(404, "subscription_not_found", str(exc)) from exc
    except (BadRequestError, InputError) as exc:
        raise ApiError(422, "invalid_subscription", str(exc)) from exc
    except PermanentError as exc:
        raise ApiError(502, "upstream_refused", str(exc)) from exc
    finally:
        await client.close()


def _parse_create(
    body: object,
) -> tuple[subscriptions.SubscriptionType, subscriptions.Selection, bool | None]:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "expected a JSON object")
    unknown = set(body) - {"type", "ids", "query", "all", "collect_unknown"}
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown field(s): {', '.join(sorted(unknown))}")
    kind = body.get("type", "experience")
    if kind not in ("experience", "profile"):
        raise ApiError(400, "invalid_body", "type must be experience or profile")
    chosen = [name for name in ("ids", "query", "all") if name in body]
    if len(chosen) != 1:
        raise ApiError(400, "invalid_body", "give exactly one of ids, query or all: true")
    collect_unknown = body.get("collect_unknown")
    if collect_unknown is not None and not isinstance(collect_unknown, bool):
        raise ApiError(400, "invalid_body", "collect_unknown must be a boolean")
    return kind, _selection(chosen[0], body[chosen[0]]), collect_unknown


def _selection(name: str, value: Any) -> subscriptions.Selection:
    if name == "ids":
        valid = isinstance(value, list) and value and all(_is_id(v) for v in value)
        if not valid:
            raise ApiError(400, "invalid_body", "ids must be a non-empty list of positive integers")
        # JSON Schema counts 5.0 as an integer, so the API does too (as POST /v1/runs does).
        return subscriptions.Selection(ids=sorted({int(v) for v in value}))
    if name == "query":
        if not isinstance(value, dict) or not isinstance(value.get("query"), dict):
            raise ApiError(400, "invalid_body", 'query must be an ES-DSL body: {"query": {...}}')
        return subscriptions.Selection(query=value)
    if value is not True:
        raise ApiError(400, "invalid_body", "all must be true")
    return subscriptions.Selection()


def _is_id(value: object) -> bool:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


async def create_subscription(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    kind, selection, collect_unknown = _parse_create(await read_json(request, MAX_SUBSCRIPTION_BODY_BYTES))
    async with _upstream(services) as subs:
        doc, url = await subscriptions.create(
            services, subs, kind, selection, collect_unknown=collect_unknown
        )
    body = {**subscriptions.public_view(doc), "webhook_url": url}
    return json_response(body, 201, headers={"Location": f"/v1/subscriptions/{doc['_id']}"})


async def list_subscriptions(request: web.Request) -> web.Response:
    docs = await request.app[SERVICES].store.webhooks.subscriptions()
    return json_response({"subscriptions": [subscriptions.public_view(doc) for doc in docs]})


def _subscription_id(request: web.Request) -> str:
    value = request.match_info["id"]
    if not 1 <= len(value) <= _ID_CHARS:
        raise ApiError(400, "invalid_parameter", "subscription id is too long")
    return value


def _by_id(
    action: Callable[[Services, SubscriptionClient, str], Awaitable[Any]], status: int = 200
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        services = request.app[SERVICES]
        async with _upstream(services) as subs:
            result = await action(services, subs, _subscription_id(request))
        if result is None:
            return web.Response(status=204)
        body = result if "id" in result else subscriptions.public_view(result)
        return json_response(body, status)

    return handler


show_subscription = _by_id(subscriptions.show)
renew_subscription = _by_id(subscriptions.renew)
delete_subscription = _by_id(subscriptions.delete)
