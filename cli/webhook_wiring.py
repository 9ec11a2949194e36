"""Async entry points of the webhook, subscription and change-feed commands."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from config import Settings
from jobs import subscriptions, webhooks
from jobs.changes import read_changes
from worker.client import SubscriptionClient
from worker.runtime import Services


async def replay(settings: Settings, since: datetime | None) -> int:
    services = await Services.open(settings)
    try:
        return await webhooks.replay(services, since)
    finally:
        await services.close()


async def manage(settings: Settings, action: str, **kwargs: Any) -> Any:
    """subscriptions create/list/show/renew/delete; returns what the command prints."""
    services = await Services.open(settings)
    try:
        if action == "list":
            return [subscriptions.public_view(d) for d in await services.store.webhooks.subscriptions()]
        client = subscriptions.open_client(services)
        try:
            subs = SubscriptionClient(client)
            if action == "create":
                doc, url = await subscriptions.create(services, subs, **kwargs)
                return {**subscriptions.public_view(doc), "webhook_url": url}
            if action == "show":
                return await subscriptions.show(services, subs, kwargs["subscription_id"])
            if action == "renew":
                return subscriptions.public_view(
                    await subscriptions.renew(services, subs, kwargs["subscription_id"])
                )
            await subscriptions.delete(services, subs, kwargs["subscription_id"])
            return {"deleted": kwargs["subscription_id"]}
        finally:
            await client.close()
    finally:
        await services.close()


async def print_changes(
    settings: Settings,
    *,
    since: datetime | None,
    employee_id: int | None,
    event_type: str | None,
    limit: int,
    as_json: bool,
    follow: bool,
    interval_s: float,
) -> int:
    """Print events oldest first (JSON lines with --json); --follow keeps polling with the cursor."""
    services = await Services.open(settings)
    printed, cursor = 0, None
    try:
        while True:
            page = await read_changes(
                services, since=since, employee_id=employee_id, event_type=event_type,
                limit=limit, cursor=cursor,
            )  # fmt: skip
            for event in page.changes:
                print(json.dumps(event, default=str) if as_json else _line(event), flush=True)
            printed += len(page.changes)
            cursor = page.next_cursor
            if page.has_more:
                if not page.changes:  # the next events are settling: wait for them, don't spin
                    await asyncio.sleep(min(interval_s, settings.changes_settle_s))
                continue
            if not follow:
                return printed
            await asyncio.sleep(interval_s)
    finally:
        await services.close()


def _line(event: dict[str, Any]) -> str:
    kinds = ",".join(e["type"] for e in event["events"]) or "-"
    roles = "; ".join(
        f"{e['type']} {e.get('title') or '?'} @ {e.get('company_name') or '?'}" for e in event["events"]
    )
    head = f"{event['id']}\t{event['detected_at']}\t{event['employee_id']}\t{event['source']}\t{kinds}"
    return f"{head}\t{','.join(event['fields'])}\t{roles}".rstrip()


def warn(message: str) -> None:
    print(message, file=sys.stderr)
