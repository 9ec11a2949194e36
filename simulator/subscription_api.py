"""Webhook subscription endpoints (spec §9), under `/cdapi`:

POST   /v2/subscriptions/experience_changes/{ids|es_dsl|all}                 experience changes (rev. A)
POST   /v2/subscriptions/experience_changes/employee_clean/{ids|es_dsl|all}  the same (rev. B alias)
POST   /v2/subscriptions/employee_clean/{ids|es_dsl|all}                     profile changes (§9.3b)
       bodies: {"webhook_url"} plus {"ids": [int, ...]} | {"es_dsl_query": {"query": ...}};
       profile changes also take an optional {"fields": ["experience", ...]} (subscribe by field)
       200 {"id", "status": "active", "created_at", "expiring_at"} (microsecond ISO, no zone)
GET    /v2/subscriptions?expired=false&page=1   200 [{"id", "status", "created_at", "expiring_at"}]
                                                (YYYY-MM-DD; `subscriptions_page_size` a page;
                                                expired=true lists the expired ones instead)
GET    /v2/subscriptions/{id}          200 the lifecycle fields + type, selection, webhook_url,
                                       last_webhook_sent_at, es_dsl_query | ids_count, fields
POST   /v2/subscriptions/{id}/renew    200 the create shape with the new expiring_at
DELETE /v2/subscriptions/{id}          200 {"id", "status": "deleted"}
POST   /v2/subscriptions/simulate      {"webhook_url"} 200 {"detail"}; one example notice with a
                                       random member follows after `simulate_delay_s`

Refusals: 401 no valid key; 429 past `subscriptions_per_minute` (9) per key over all the endpoints
above but simulate, which has its own `simulate_rps` (1); 422 a body that is not a JSON object, an
invalid webhook URL, or an es_dsl query that filters on a date (`last_updated`,
`experience.date_from`/`date_to`: any mention of them); 400 other bad data (no or bad ids, more
than `subscription_max_ids`, a bad query, bad `fields`, bad list parameters, over
`subscriptions_max_per_key` active subscriptions), renew of an expired subscription or past one
year; 404 unknown or another key's subscription; 409 renew while initialising. Subscriptions are
free (spec §7.2 default) and see no injected faults.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any, cast

from aiohttp import web
from yarl import URL

from simulator.admission import ARRIVAL, INVALID_KEY, TOO_MANY_REQUESTS, format_retry_after
from simulator.dsl import CompiledQuery, QueryError, check_limits, compile_body
from simulator.population import Population
from simulator.ratelimit import SlidingWindowLimiter
from simulator.responses import json_error, json_response
from simulator.state import STATE, SimulatorState
from simulator.subscriptions import (
    DAY,
    Selection,
    Subscription,
    SubscriptionError,
    SubscriptionType,
    new_subscription_id,
)

PREFIX = "/cdapi/v2/subscriptions"
_SELECTION = "{selection:ids|es_dsl|all}"
_DATE_FIELDS = re.compile(r"last_updated|date_from|date_to")


async def create_experience(request: web.Request) -> web.Response:
    return await _create(request, "experience_changes")


async def create_profile(request: web.Request) -> web.Response:
    return await _create(request, "employee_changes")


async def _create(request: web.Request, kind: SubscriptionType) -> web.Response:
    state = request.app[STATE]
    api_key, refusal = _admit(state, request)
    if refusal is not None:
        return refusal
    selection = cast(Selection, request.match_info["selection"])
    try:
        body = await _json_object(request)
        subscription = _build(state, api_key, kind, selection, body)
        state.subscriptions.add(subscription, state.config, state.world_clock.now())
    except SubscriptionError as exc:
        return json_error(exc.status, exc.detail)
    return _answer(state, subscription.lifecycle(state.world_clock.now()))


def _build(
    state: SimulatorState, api_key: str, kind: SubscriptionType, selection: Selection, body: dict[str, Any]
) -> Subscription:
    now = state.world_clock.now()
    subscription = Subscription(
        id=new_subscription_id(),
        api_key=api_key,
        type=kind,
        selection=selection,
        webhook_url=webhook_url(body),
        created_at=now,
        expiring_at=now + state.config.subscription_days * DAY,
    )
    if selection == "ids":
        subscription.ids = _ids(body, state.config.subscription_max_ids)
    elif selection == "es_dsl":
        subscription.es_dsl_query, subscription.compiled = _query(body, state)
    if kind == "employee_changes" and body.get("fields") is not None:
        subscription.fields = _fields(body["fields"])
    return subscription


def webhook_url(body: dict[str, Any]) -> str:
    raw = body.get("webhook_url")
    if not isinstance(raw, str):
        raise SubscriptionError(422, "Invalid webhook URL")
    try:
        url = URL(raw)
    except ValueError:
        raise SubscriptionError(422, "Invalid webhook URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise SubscriptionError(422, "Invalid webhook URL")
    return raw


def _ids(body: dict[str, Any], maximum: int) -> frozenset[int]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids:
        raise SubscriptionError(400, "'ids' must be a non-empty list of employee ids")
    if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
        raise SubscriptionError(400, "'ids' must hold positive integers only")
    if len(ids) > maximum:
        raise SubscriptionError(400, f"too many ids, maximum is {maximum}")
    return frozenset(ids)


def _query(body: dict[str, Any], state: SimulatorState) -> tuple[dict[str, Any], CompiledQuery]:
    query = body.get("es_dsl_query")
    if not isinstance(query, dict):
        raise SubscriptionError(400, "'es_dsl_query' must be an object with a 'query'")
    text = json.dumps(query)
    if _DATE_FIELDS.search(text):
        raise SubscriptionError(422, "date filters (e.g. last_updated) are not allowed in subscriptions")
    try:
        check_limits(text, query)
        compiled = compile_body(query, now=state.world_clock.now())
    except QueryError as exc:
        raise SubscriptionError(exc.status, str(exc.reason)) from None
    return query, compiled


def _fields(raw: object) -> frozenset[str]:
    if not isinstance(raw, list) or not raw or not all(isinstance(f, str) and f for f in raw):
        raise SubscriptionError(400, "'fields' must be a non-empty list of field names")
    return frozenset(raw)


async def list_subscriptions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    api_key, refusal = _admit(state, request)
    if refusal is not None:
        return refusal
    expired_raw = request.query.get("expired", "false").lower()
    page_raw = request.query.get("page", "1")
    if expired_raw not in ("true", "false") or not page_raw.isdigit() or int(page_raw) < 1:
        return json_error(400, "'expired' must be true or false and 'page' a positive integer")
    now = state.world_clock.now()
    chosen = state.subscriptions.page(
        api_key,
        expired=expired_raw == "true",
        page=int(page_raw),
        size=state.config.subscriptions_page_size,
        now=now,
    )
    return _answer(state, [s.summary(now) for s in chosen])


async def get_subscription(request: web.Request) -> web.Response:
    return await _on_one(request, "get")


async def renew(request: web.Request) -> web.Response:
    return await _on_one(request, "renew")


async def delete(request: web.Request) -> web.Response:
    return await _on_one(request, "delete")


async def _on_one(request: web.Request, action: str) -> web.Response:
    state = request.app[STATE]
    api_key, refusal = _admit(state, request)
    if refusal is not None:
        return refusal
    subscription_id = request.match_info["id"]
    store, now = state.subscriptions, state.world_clock.now()
    try:
        if action == "get":
            return _answer(state, store.get(api_key, subscription_id).detail(now))
        if action == "renew":
            return _answer(state, store.renew(api_key, subscription_id, state.config, now).lifecycle(now))
        store.delete(api_key, subscription_id)
    except SubscriptionError as exc:
        return json_error(exc.status, exc.detail)
    return _answer(state, {"id": subscription_id, "status": "deleted"})


async def simulate(request: web.Request) -> web.Response:
    state = request.app[STATE]
    _, refusal = _admit(state, request, state.simulate_limiter, state.config.simulate_rps)
    if refusal is not None:
        return refusal
    try:
        url = webhook_url(await _json_object(request))
    except SubscriptionError as exc:
        return json_error(exc.status, exc.detail)
    member_id = _random_member(state)
    state.notifier.spawn(state.notifier.simulate(url, member_id, state.config))
    return _answer(state, {"detail": "A simulated webhook will be sent to the URL shortly"})


def _random_member(state: SimulatorState) -> int:
    state.notifier.simulate_requests += 1
    rng = random.Random(f"{state.config.seed}:simulate:{state.notifier.simulate_requests}")
    size = state.population.size
    return Population.id_at(rng.randrange(size)) if size else Population.id_at(0)


def _admit(
    state: SimulatorState,
    request: web.Request,
    limiter: SlidingWindowLimiter | None = None,
    limit: int | None = None,
) -> tuple[str, web.Response | None]:
    api_key = request.headers.get("apikey", "")
    if api_key not in state.config.api_keys:
        return api_key, json_error(401, INVALID_KEY)
    limiter = limiter or state.subscription_limiter
    limit = limit or state.config.subscriptions_per_minute
    arrival = request[ARRIVAL] if ARRIVAL in request else state.clock()
    decision = limiter.check(api_key, "subscriptions", limit, arrival)
    if not decision.accepted:
        seconds = state.config.retry_after_s
        headers = None if seconds is None else {"Retry-After": format_retry_after(seconds)}
        return api_key, json_error(429, TOO_MANY_REQUESTS, headers=headers)
    return api_key, None


def _answer(state: SimulatorState, payload: Any) -> web.Response:
    return json_response(payload, headers={"x-credits-remaining": str(state.credits_header())})


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text())
    except (ValueError, RecursionError):
        raise SubscriptionError(422, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SubscriptionError(422, "request body must be a JSON object")
    return body


def add_routes(app: web.Application) -> None:
    # Fixed paths first: aiohttp tries resources in the order they were added.
    app.router.add_post(f"{PREFIX}/simulate", simulate)
    app.router.add_post(f"{PREFIX}/experience_changes/employee_clean/{_SELECTION}", create_experience)
    app.router.add_post(f"{PREFIX}/experience_changes/{_SELECTION}", create_experience)
    app.router.add_post(f"{PREFIX}/employee_clean/{_SELECTION}", create_profile)
    app.router.add_get(PREFIX, list_subscriptions, allow_head=False)
    app.router.add_get(f"{PREFIX}/{{id}}", get_subscription, allow_head=False)
    app.router.add_post(f"{PREFIX}/{{id}}/renew", renew)
    app.router.add_delete(f"{PREFIX}/{{id}}", delete)
    app.on_cleanup.append(_close_notifier)


async def _close_notifier(app: web.Application) -> None:
    await app[STATE].notifier.close()
