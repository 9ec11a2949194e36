"""Webhook subscriptions: create, list, show, renew, delete, and the periodic renewer.

Each subscription gets its own capability URL, `WEBHOOK_PUBLIC_BASE_URL/v1/webhooks/coresignal/
<token>`: the token is random, shown once (at creation), and stored only as its SHA-256.

Renewal: upstream subscriptions live 91 days, a renew adds 91, and none may live more than a year
after its creation (spec §9). The renewer (`subscriptions_tick`, one process at a time under a
Redis lease) renews each subscription SUBSCRIPTION_RENEW_BEFORE_DAYS before it expires; when the
API refuses (past the one-year limit, expired, gone) it recreates the subscription with the same
selection and a new token, and deletes the old one. The same pass deletes the subscriptions of
a `--webhooks` sync that is gone (`reap_orphaned`; `jobs.sync_webhooks` makes them).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import structlog

from jobs.webhook_notices import new_token, receiver_url, token_hash
from jobs.webhooks import warn_silent
from worker import keys
from worker.client import CoresignalClient, SubscriptionClient, SubscriptionInfo, SubscriptionSelection
from worker.errors import InputError, PermanentError, SubscriptionNotFoundError, SubscriptionRenewalError
from worker.run_model import utcnow
from worker.runtime import Services, WorkerContext
from worker.store.base import Doc

log = structlog.get_logger("employee_sync.subscriptions")

type SubscriptionType = Literal["experience", "profile"]
LEASE_TTL_MS = 55_000
RENEW_ADDS = timedelta(days=91)  # what one renew adds upstream (spec §9)
DAY_S = 86_400.0


class SubscriptionMissingError(InputError):
    """No local subscription with that id."""


@dataclass(frozen=True, slots=True)
class Selection:
    """What a subscription watches: ids, an ES-DSL query, or everyone."""

    ids: list[int] | None = None
    query: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return "ids" if self.ids is not None else "es_dsl" if self.query is not None else "all"

    def upstream(self) -> SubscriptionSelection:
        if self.ids is not None:
            return self.ids
        if self.query is not None:
            return self.query
        return "all"


def _time(value: str | None, fallback: datetime) -> datetime:
    if not value:
        return fallback
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def public_view(doc: Doc) -> dict[str, Any]:
    """A subscription as users see it: everything but the token hash (and the id list itself)."""
    out = {k: v for k, v in doc.items() if k not in {"_id", "token_hash", "ids", "query_json"}}
    out["id"] = doc["_id"]
    out["ids_count"] = len(doc.get("ids") or []) if doc.get("selection") == "ids" else None
    if doc.get("query_json"):
        out["query"] = json.loads(doc["query_json"])
    return out


async def create(
    services: Services,
    subs: SubscriptionClient,
    kind: SubscriptionType,
    selection: Selection,
    *,
    collect_unknown: bool | None = None,
    sync: str | None = None,
) -> tuple[Doc, str]:
    """Create upstream and record locally; returns (the record, the webhook URL with its token).
    `sync`: the `--webhooks` sync that owns it (renewed like any other, deleted with the sync).
    Creating a subscription costs no credits (spec §7.2: "do not consume credits"; one page says
    ES-DSL ones are charged, a conflict the spec defaults to free)."""
    base = services.settings.webhook_public_base_url
    if not base:
        raise InputError("WEBHOOK_PUBLIC_BASE_URL is not set: the upstream needs a URL to call")
    if kind not in ("experience", "profile"):
        raise InputError(f"unknown subscription type {kind!r}; experience or profile")
    token = new_token()
    url = receiver_url(base, token)
    info = await subs.create_subscription(kind, selection.upstream(), url)
    # An id list names the profiles we want: a notice for one we do not mirror yet collects it.
    unknown = selection.ids is not None if collect_unknown is None else collect_unknown
    doc = _record(services, info, kind, selection, token_hash(token), unknown)
    doc["sync"] = sync
    await services.store.webhooks.save_subscription(doc)
    log.info("subscription.created", subscription=info.id, type=kind, selection=selection.name)
    return doc, url


def _record(
    services: Services,
    info: SubscriptionInfo,
    kind: str,
    selection: Selection,
    hashed: str,
    collect_unknown: bool,
) -> Doc:
    now = utcnow()
    created = _time(info.created_at, now)
    settings = services.settings
    return {
        "_id": info.id,
        "type": kind,
        "selection": selection.name,
        "ids": selection.ids,
        "query_json": None if selection.query is None else json.dumps(selection.query),
        "collect_unknown": collect_unknown,
        "token_hash": hashed,
        "status": info.status,
        "created_at": created,
        "expiring_at": _time(info.expiring_at, now),
        "lineage_started_at": created,
        "renewed_at": None,
        "last_delivery_at": None,
        "silence_after_s": (settings.webhook_cadence_days + settings.webhook_silence_slack_days) * DAY_S,
    }


def _selection_of(doc: Doc) -> Selection:
    if doc.get("selection") == "ids":
        return Selection(ids=[int(i) for i in doc.get("ids") or []])
    if doc.get("selection") == "es_dsl":
        return Selection(query=json.loads(doc["query_json"]))
    return Selection()


async def get_local(services: Services, subscription_id: str) -> Doc:
    doc = await services.store.webhooks.subscription(subscription_id)
    if doc is None:
        raise SubscriptionMissingError(f"no subscription {subscription_id!r}")
    return doc


async def show(services: Services, subs: SubscriptionClient, subscription_id: str) -> dict[str, Any]:
    """The local record plus what the API says about it now (`upstream`)."""
    doc = await get_local(services, subscription_id)
    view = public_view(doc)
    try:
        info = await subs.get_subscription(subscription_id)
        view["upstream"] = {k: v for k, v in info.body.items() if k != "webhook_url"}  # holds the token
    except SubscriptionNotFoundError:
        view["upstream"] = None
    return view


async def renew(services: Services, subs: SubscriptionClient, subscription_id: str) -> Doc:
    await get_local(services, subscription_id)
    info = await subs.renew_subscription(subscription_id)
    fields = {"expiring_at": _time(info.expiring_at, utcnow()), "renewed_at": utcnow(), "status": info.status}
    await services.store.webhooks.update_subscription(subscription_id, fields)
    return await get_local(services, subscription_id)


async def delete(services: Services, subs: SubscriptionClient, subscription_id: str) -> None:
    await get_local(services, subscription_id)
    with contextlib.suppress(SubscriptionNotFoundError):
        await subs.delete_subscription(subscription_id)
    await services.store.webhooks.delete_subscription(subscription_id)


async def recreate(services: Services, subs: SubscriptionClient, doc: Doc) -> Doc:
    """A new upstream subscription (new token, a new one-year lineage) replacing `doc`."""
    selection = _selection_of(doc)
    new_doc, _ = await create(
        services,
        subs,
        doc["type"],
        selection,
        collect_unknown=bool(doc.get("collect_unknown")),
        sync=doc.get("sync"),  # a sync's subscription stays its sync's
    )
    new_doc["last_delivery_at"] = doc.get("last_delivery_at")
    await services.store.webhooks.replace_subscription(doc["_id"], new_doc)
    with contextlib.suppress(SubscriptionNotFoundError, PermanentError):
        await subs.delete_subscription(doc["_id"])
    log.info("subscription.recreated", old=doc["_id"], new=new_doc["_id"])
    return new_doc


async def renew_due(
    services: Services, subs: SubscriptionClient, *, now: datetime | None = None
) -> list[str]:
    """Renew (or recreate) every subscription expiring within the renew window; returns what was done."""
    now = now or utcnow()
    settings = services.settings
    before = timedelta(days=settings.subscription_renew_before_days)
    done: list[str] = []
    for doc in await services.store.webhooks.subscriptions():
        expiring_at = doc.get("expiring_at")
        if not isinstance(expiring_at, datetime) or expiring_at - now > before:
            continue
        if _past_lifetime(doc, expiring_at, settings.subscription_max_lifetime_days):
            done.append(await _recreated(services, subs, doc))  # a renew would be refused: save the call
            continue
        try:
            await renew(services, subs, doc["_id"])
            done.append(f"renewed {doc['_id']}")
        except (SubscriptionRenewalError, SubscriptionNotFoundError):
            done.append(await _recreated(services, subs, doc))
    return done


def _past_lifetime(doc: Doc, expiring_at: datetime, max_days: float) -> bool:
    lineage = doc.get("lineage_started_at")
    return isinstance(lineage, datetime) and expiring_at + RENEW_ADDS > lineage + timedelta(days=max_days)


async def _recreated(services: Services, subs: SubscriptionClient, doc: Doc) -> str:
    new_doc = await recreate(services, subs, doc)
    return f"recreated {doc['_id']} as {new_doc['_id']}"


async def reap_orphaned(services: Services, subs: SubscriptionClient) -> list[str]:
    """Delete (upstream and here) every subscription whose sync is gone; returns their ids."""
    alive: dict[str, bool] = {}
    reaped: list[str] = []
    for doc in await services.store.webhooks.sync_owned_subscriptions():
        name = str(doc["sync"])
        if name not in alive:
            sync = await services.store.syncs.get(name)
            alive[name] = sync is not None and sync.webhooks
        if not alive[name]:
            await delete(services, subs, doc["_id"])
            log.info("subscription.sync_gone", sync=name, subscription=doc["_id"])
            reaped.append(str(doc["_id"]))
    return reaped


async def subscriptions_tick(ctx: WorkerContext) -> str:
    """Periodic: one renewer in the fleet at a time (the lease), at most one pass a minute."""
    services = ctx["services"]
    if not await services.store.webhooks.subscriptions():
        return "no subscriptions"
    token = await services.queue.try_lock(keys.SUBSCRIPTIONS_LEASE, LEASE_TTL_MS)
    if token is None:
        return "skipped: another renewer holds the lease"
    # The lease is left to expire rather than released: a minute between passes paces the
    # upstream's 9 subscription calls a minute even with many workers ticking.
    subs = SubscriptionClient(ctx["client"])
    reaped = await reap_orphaned(services, subs)  # first: renewing one about to go is a wasted call
    done = reaped + await renew_due(services, subs)
    silent = await warn_silent(services, utcnow())  # once a minute fleet-wide: the lease holder
    return f"renewer: {len(done)} done, {silent} silent"


def open_client(services: Services) -> CoresignalClient:
    settings = services.settings
    return CoresignalClient.open(
        settings.coresignal_base_url,
        settings.require_api_key(),
        timeout_s=settings.request_timeout_s,
        observer=services.metrics,
    )
