"""A `--webhooks` sync's subscriptions: made for its selection, renewed with the rest, deleted with it.

Each scheduler tick of a sync with `webhooks` on makes sure its selection is subscribed (spec §9),
through `jobs.subscriptions.create`, so each subscription gets its own capability URL under
WEBHOOK_PUBLIC_BASE_URL and a record owned by the sync (`sync: <name>`):
- ids and names syncs: `ids` subscriptions over the member ids (a names sync's members once they
  resolve to ids), at most SYNC_SUBSCRIPTION_MAX_IDS ids each (the spec cites 300,000 per
  subscription); members no subscription covers yet get a new one, so nothing is subscribed twice.
- query syncs: one `es_dsl` subscription with the sync's query (a query the API refuses, e.g. one
  with a date filter, is recorded as the sync's `webhook_error`; the sweep carries on without).
Notices then go the ordinary webhook path (`jobs.webhooks`): a `webhook` (or bulk) run refreshes
the named members, and since the sweep reads `synced_at` from the mirror, a member a notice
refreshed is not due again until it ages. Renewal is the renewer's (`jobs.subscriptions`), which
keeps the owner when it has to recreate one. A deleted sync's subscriptions are deleted upstream by
the renewer's next pass (`jobs.subscriptions.reap_orphaned`, once a minute fleet-wide), so the API
process that deletes a sync never needs the Coresignal key.

Credits: creating, renewing and deleting a subscription cost none (spec §7.2, "do not consume
credits"; the conflicting page is defaulted to free there). Each is one request of the 9 a minute
the API allows: a sync makes ⌈members / SYNC_SUBSCRIPTION_MAX_IDS⌉ (or one) at its first tick.
"""

from __future__ import annotations

import json
from typing import Any

import structlog

from jobs.subscriptions import Selection, create
from worker.client import SubscriptionClient
from worker.errors import EmployeeSyncError
from worker.runtime import Services, WorkerContext
from worker.store.base import Doc
from worker.sync_model import Sync, SyncSource

log = structlog.get_logger("employee_sync.sync_webhooks")


async def ensure_subscriptions(ctx: WorkerContext, sync: Sync) -> str:
    """Subscribe what of the sync's selection is not subscribed yet; returns what happened.

    A refusal or an outage is recorded on the sync (`webhook_error`) and tried again at its next
    tick: webhooks only add freshness between ticks, so they never stop the tick itself."""
    services = ctx["services"]
    owned = await services.store.webhooks.subscriptions_of_sync(sync.name)
    try:
        made = await _subscribe_missing(services, SubscriptionClient(ctx["client"]), sync, owned)
    except EmployeeSyncError as exc:
        log.warning("sync.webhooks_failed", sync=sync.name, error=str(exc))
        await services.store.syncs.record_webhook_error(sync.name, str(exc))
        return f"webhooks: {exc}"
    if sync.webhook_error is not None:
        await services.store.syncs.record_webhook_error(sync.name, None)
    return f"webhooks: {made} subscription(s) made"


async def _subscribe_missing(
    services: Services, subs: SubscriptionClient, sync: Sync, owned: list[Doc]
) -> int:
    kind = services.settings.sync_subscription_type
    if sync.source is SyncSource.QUERY:
        assert sync.query_json is not None
        selection = Selection(query={"query": json.loads(sync.query_json)["query"]})
        wanted = json.dumps(selection.query)  # as `jobs.subscriptions` records it
        if any(doc.get("query_json") == wanted for doc in owned):
            return 0
        await create(services, subs, kind, selection, sync=sync.name)
        return 1
    covered = {int(i) for doc in owned for i in doc.get("ids") or []}
    missing = [i for i in await services.store.syncs.member_ids(sync.name) if i not in covered]
    size = services.settings.sync_subscription_max_ids
    chunks = [missing[start : start + size] for start in range(0, len(missing), size)]
    for chunk in chunks:  # each saved as it is made: a failure half way keeps the ones made
        await create(services, subs, kind, Selection(ids=chunk), sync=sync.name)
    return len(chunks)


async def webhook_view(services: Services, sync: Sync) -> dict[str, Any]:
    """What `syncs show`/`list` and `/v1/syncs` say about the sync's subscriptions.

    `webhook_state`: off (no --webhooks), pending (none made yet: before the first tick, or a names
    sync whose names are not resolved), active, degraded (some made, the last attempt failed), or
    failed (none made; `webhook_error` says why)."""
    if not sync.webhooks:
        return {"webhook_state": "off", "webhook_subscriptions": []}
    owned = await services.store.webhooks.subscriptions_of_sync(sync.name)
    if owned:
        state = "degraded" if sync.webhook_error else "active"
    else:
        state = "failed" if sync.webhook_error else "pending"
    return {"webhook_state": state, "webhook_subscriptions": [_row(doc) for doc in owned]}


def _row(doc: Doc) -> dict[str, Any]:
    expiring, delivered = doc.get("expiring_at"), doc.get("last_delivery_at")
    return {
        "id": doc["_id"],
        "status": doc.get("status"),
        "selection": doc.get("selection"),
        "ids_count": len(doc.get("ids") or []) if doc.get("selection") == "ids" else None,
        "expiring_at": expiring.isoformat() if expiring is not None else None,
        "last_delivery_at": delivered.isoformat() if delivered is not None else None,
    }
