"""Webhook subscriptions, the durable inbox of received notices, and the notice idempotency keys.

- `webhook_subscriptions`: `{_id: <upstream subscription id>, kind, selection ("ids"|"es_dsl"|
  "all"), ids, query_json, collect_unknown, token_hash, webhook_url_base, created_at, expiring_at,
  lineage_started_at, last_delivery_at, renewed_at, sync}` (`sync`: the name of the `--webhooks`
  sync that owns it, None for one made by hand). The capability token itself is never
  stored: only its SHA-256 (unique index), so a leaked database cannot forge deliveries.
- `webhook_inbox`: `{_id: "<subscription>:<sha256 of body>", subscription_id, received_at, body,
  notices, state: "pending"|"expanded", run_id, expanded_at, lag_recorded}`. The id makes an exact
  re-send a duplicate key: stored once, expanded once.
- `webhook_notices`: `{_id: "<member id>:<status>:<ISO week>", inbox_id, at}`: a member noticed
  twice in one week (two subscriptions, or a re-sent batch with other bytes) is refreshed once.
  The key remembers which inbox document claimed it, so re-expanding that document (a crash half
  way, a replay) still finds its own notices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from worker.store.base import Doc, translated

PENDING, EXPANDED = "pending", "expanded"


@dataclass(frozen=True, slots=True)
class InboxEntry:
    inbox_id: str
    subscription_id: str
    received_at: datetime
    body: bytes
    state: str
    run_id: str | None


def _entry(doc: Doc) -> InboxEntry:
    return InboxEntry(
        inbox_id=str(doc["_id"]),
        subscription_id=str(doc["subscription_id"]),
        received_at=doc["received_at"],
        body=bytes(doc["body"]),
        state=str(doc.get("state", PENDING)),
        run_id=doc.get("run_id"),
    )


class WebhookStore:
    def __init__(
        self, subscriptions: AsyncCollection[Doc], inbox: AsyncCollection[Doc], notices: AsyncCollection[Doc]
    ) -> None:
        self._subs = subscriptions
        self._inbox = inbox
        # The 202 promises the body survives a crash: acknowledged once journaled on a majority.
        self._durable_inbox = inbox.with_options(write_concern=WriteConcern(w="majority", j=True))
        self._notices = notices

    # --- subscriptions ----------------------------------------------------------------------

    async def save_subscription(self, doc: Doc) -> None:
        async with translated("write subscription"):
            await self._subs.replace_one({"_id": doc["_id"]}, doc, upsert=True)

    async def subscription(self, subscription_id: str) -> Doc | None:
        async with translated("read subscription"):
            return await self._subs.find_one({"_id": subscription_id})

    async def subscription_by_token_hash(self, token_hash: str) -> Doc | None:
        async with translated("read subscription"):
            return await self._subs.find_one({"token_hash": token_hash})

    async def subscriptions(self) -> list[Doc]:
        async with translated("list subscriptions"):
            return [doc async for doc in self._subs.find({}).sort("created_at", ASCENDING)]

    async def subscriptions_of_sync(self, sync_name: str) -> list[Doc]:
        """The subscriptions a `--webhooks` sync owns, oldest first."""
        async with translated("list subscriptions"):
            cursor = self._subs.find({"sync": sync_name}).sort("created_at", ASCENDING)
            return [doc async for doc in cursor]

    async def sync_owned_subscriptions(self) -> list[Doc]:
        """Every subscription some sync owns (the scheduler deletes those whose sync is gone)."""
        async with translated("list subscriptions"):
            cursor = self._subs.find({"sync": {"$type": "string"}}).sort("created_at", ASCENDING)
            return [doc async for doc in cursor]

    async def update_subscription(self, subscription_id: str, fields: dict[str, Any]) -> None:
        async with translated("update subscription"):
            await self._subs.update_one({"_id": subscription_id}, {"$set": fields})

    async def replace_subscription(self, old_id: str, doc: Doc) -> None:
        """A recreated subscription: the new upstream id takes over the old record (and token)."""
        await self.save_subscription(doc)
        if old_id != doc["_id"]:
            await self.delete_subscription(old_id)

    async def delete_subscription(self, subscription_id: str) -> None:
        async with translated("delete subscription"):
            await self._subs.delete_one({"_id": subscription_id})

    async def subscriptions_page(self, *, before: tuple[datetime, str] | None, limit: int) -> list[Doc]:
        """Newest first, without the id list, the query or the token hash (a list of 500,000 ids is
        megabytes, and a page needs none of it); `before` is the (created_at, id) of the last row."""
        query: Doc = {}
        if before is not None:
            at, subscription_id = before
            query["$or"] = [{"created_at": {"$lt": at}}, {"created_at": at, "_id": {"$lt": subscription_id}}]
        hidden = {"ids": False, "query_json": False, "token_hash": False}
        order = [("created_at", DESCENDING), ("_id", DESCENDING)]
        async with translated("page subscriptions"):
            return [doc async for doc in self._subs.find(query, hidden).sort(order).limit(limit)]

    async def count_subscriptions(self) -> int:
        async with translated("count subscriptions"):
            return await self._subs.count_documents({})

    # --- the inbox --------------------------------------------------------------------------

    async def receive(
        self, inbox_id: str, subscription_id: str, body: bytes, notices: int, now: datetime
    ) -> bool:
        """Store a received body durably; False if this exact body was received for it before."""
        doc = {
            "_id": inbox_id,
            "subscription_id": subscription_id,
            "received_at": now,
            "body": body,
            "notices": notices,
            "state": PENDING,
            "run_id": None,
            "expanded_at": None,
            "lag_recorded": False,
        }
        try:
            async with translated("write inbox"):
                await self._durable_inbox.insert_one(doc)
        except DuplicateKeyError:
            return False
        async with translated("update subscription"):
            await self._subs.update_one({"_id": subscription_id}, {"$set": {"last_delivery_at": now}})
        return True

    async def inbox_entry(self, inbox_id: str) -> InboxEntry | None:
        async with translated("read inbox"):
            doc = await self._inbox.find_one({"_id": inbox_id})
        return None if doc is None else _entry(doc)

    async def pending(self, limit: int = 1000) -> list[str]:
        async with translated("read inbox"):
            cursor = self._inbox.find({"state": PENDING}, {"_id": True}).sort("received_at", ASCENDING)
            return [str(doc["_id"]) async for doc in cursor.limit(limit)]

    async def backlog(self) -> int:
        async with translated("count inbox"):
            return await self._inbox.count_documents({"state": PENDING})

    async def received_notices(self) -> tuple[int, int]:
        """(bodies, notices) the inbox holds: what the receiver accepted, duplicates excluded."""
        async with translated("read inbox"):
            counts = [int(doc.get("notices", 0)) async for doc in self._inbox.find({}, {"notices": True})]
        return len(counts), sum(counts)

    async def mark_expanded(self, inbox_id: str, run_id: str | None, now: datetime) -> None:
        async with translated("update inbox"):
            await self._inbox.update_one(
                {"_id": inbox_id}, {"$set": {"state": EXPANDED, "run_id": run_id, "expanded_at": now}}
            )

    async def reopen_since(self, since: datetime | None) -> list[str]:
        """Replay: put entries received since `since` (all: None) back to pending; returns their ids."""
        query: Doc = {} if since is None else {"received_at": {"$gte": since}}
        async with translated("read inbox"):
            ids = [str(doc["_id"]) async for doc in self._inbox.find(query, {"_id": True})]
            if ids:
                await self._inbox.update_many(
                    {"_id": {"$in": ids}}, {"$set": {"state": PENDING, "lag_recorded": False}}
                )
        return ids

    async def lag_unrecorded(self, limit: int = 500) -> list[tuple[str, datetime, str]]:
        """Expanded entries with a run whose lag was not observed yet: (inbox id, received_at, run id)."""
        query = {"state": EXPANDED, "lag_recorded": False, "run_id": {"$ne": None}}
        async with translated("read inbox"):
            cursor = self._inbox.find(query, {"received_at": True, "run_id": True}).limit(limit)
            return [(str(d["_id"]), d["received_at"], str(d["run_id"])) async for d in cursor]

    async def received_by_run(self) -> dict[str, datetime]:
        """Refresh run id -> when its body was received (benchmarks, small inboxes)."""
        query = {"run_id": {"$ne": None}}
        async with translated("read inbox"):
            cursor = self._inbox.find(query, {"received_at": True, "run_id": True})
            return {str(d["run_id"]): d["received_at"] async for d in cursor}

    async def lag_recorded(self, inbox_id: str) -> None:
        async with translated("update inbox"):
            await self._inbox.update_one({"_id": inbox_id}, {"$set": {"lag_recorded": True}})

    # --- notice idempotency keys --------------------------------------------------------------

    async def claim_notices(self, inbox_id: str, keys: Sequence[str], now: datetime) -> set[str]:
        """Claim (member, status, week) keys for an inbox entry; returns the keys that are its own
        (new now, or claimed by this same entry earlier). The rest belong to another delivery."""
        if not keys:
            return set()
        docs = [{"_id": key, "inbox_id": inbox_id, "at": now} for key in keys]
        async with translated("claim notices"):
            try:
                await self._notices.insert_many(docs, ordered=False)
            except BulkWriteError as exc:  # duplicates are the point; anything else is an error
                if any(err.get("code") != 11000 for err in exc.details.get("writeErrors", [])):
                    raise
        async with translated("read notices"):
            cursor = self._notices.find({"_id": {"$in": list(keys)}, "inbox_id": inbox_id}, {"_id": True})
            return {str(doc["_id"]) async for doc in cursor}

    async def prune_notices(self, before: datetime) -> None:
        async with translated("prune notices"):
            await self._notices.delete_many({"at": {"$lt": before}})

    async def ensure_indexes(self) -> None:
        async with translated("create_index"):
            await self._subs.create_index([("token_hash", ASCENDING)], unique=True)
            await self._subs.create_index([("sync", ASCENDING)])
            await self._inbox.create_index([("state", ASCENDING), ("received_at", ASCENDING)])
            await self._inbox.create_index([("received_at", ASCENDING)])
            await self._notices.create_index([("at", ASCENDING)])
            await self._subs.create_index([("created_at", ASCENDING), ("_id", ASCENDING)])  # the dashboard
