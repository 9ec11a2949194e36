"""Webhook subscriptions (spec §9): the store, the lifecycle rules, and which changes notify whom.

Pure bookkeeping, no IO: `simulator.subscription_api` speaks HTTP, `simulator.notifier` delivers.
All times are on the world clock (`simulator.clock`), so a test can age a subscription 91 days.

Choices where the spec says GUESS (each a `SimulatorConfig` field where it is a number):
- a subscription is `active` from `created_at` until `expiring_at` (91 days), then `expired`;
- renew adds `subscription_renew_days` (91) to `expiring_at`; 400 if already expired or if the new
  expiry would be more than `subscription_max_lifetime_days` (365) after `created_at`; 409 within
  `subscription_init_s` of creation ("still initialising");
- only the creating API key sees a subscription (404 for others);
- `es_dsl` selects a change if the profile matches the query before or after it (someone who left
  the selected company is exactly the change a subscriber wants to hear about);
- experience-change subscriptions hear of `role_started` / `role_ended` (and `role_changed` only if
  `webhook_on_role_changed`); profile-change ones hear of every change, limited to `fields` if the
  subscription names some ("subscribe by field"), and each notice carries the full
  `changed_fields` union of that member's changes in the batch;
- a member changed several times in one batch is one notice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from simulator.config import SimulatorConfig
from simulator.dsl import CompiledQuery
from simulator.population import Population
from simulator.world import Batch, ChangeRecord

type SubscriptionType = Literal["experience_changes", "employee_changes"]
type Selection = Literal["ids", "es_dsl", "all"]
DAY = timedelta(days=1)


class SubscriptionError(Exception):
    """A refusal with the API's status and `detail` text."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(eq=False)
class Subscription:
    id: str
    api_key: str
    type: SubscriptionType
    selection: Selection
    webhook_url: str
    created_at: datetime
    expiring_at: datetime
    ids: frozenset[int] | None = None
    es_dsl_query: dict[str, Any] | None = None
    compiled: CompiledQuery | None = None
    fields: frozenset[str] | None = None
    last_webhook_sent_at: datetime | None = None
    notices_sent: int = 0

    def status(self, now: datetime) -> Literal["active", "expired"]:
        return "active" if now < self.expiring_at else "expired"

    def summary(self, now: datetime) -> dict[str, Any]:
        """The list shape (§9.5): dates as YYYY-MM-DD."""
        return {
            "id": self.id,
            "status": self.status(now),
            "created_at": self.created_at.date().isoformat(),
            "expiring_at": self.expiring_at.date().isoformat(),
        }

    def lifecycle(self, now: datetime) -> dict[str, Any]:
        """The create and renew shape (§9.5): microsecond ISO times, no zone."""
        return {
            "id": self.id,
            "status": self.status(now),
            "created_at": iso_micro(self.created_at),
            "expiring_at": iso_micro(self.expiring_at),
        }

    def detail(self, now: datetime) -> dict[str, Any]:
        body = self.lifecycle(now)
        body.update(
            type=self.type,
            selection=self.selection,
            webhook_url=self.webhook_url,
            last_webhook_sent_at=iso_micro(self.last_webhook_sent_at) if self.last_webhook_sent_at else None,
        )
        if self.es_dsl_query is not None:
            body["es_dsl_query"] = self.es_dsl_query
        if self.ids is not None:
            body["ids_count"] = len(self.ids)
        if self.type == "employee_changes":
            body["fields"] = sorted(self.fields) if self.fields is not None else None
        return body

    def wants(self, record: ChangeRecord, population: Population, config: SimulatorConfig) -> bool:
        """Whether this change is one this subscription is told about."""
        if record.at < self.created_at:
            return False
        if self.type == "experience_changes":
            if not (record.experience or (record.kind == "role_changed" and config.webhook_on_role_changed)):
                return False
        elif self.fields is not None and not self.fields.intersection(record.changed_fields):
            return False
        return self._selects(record, population)

    def _selects(self, record: ChangeRecord, population: Population) -> bool:
        if self.selection == "all":
            return True
        if self.selection == "ids":
            return self.ids is not None and record.employee_id in self.ids
        assert self.compiled is not None
        for version in (record.version_before + 1, record.version_before):
            document = population.profile_at(record.employee_id, version)
            if document is not None and self.compiled.evaluate(document) is not None:
                return True
        return False


def iso_micro(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds")


@dataclass(eq=False)
class SubscriptionStore:
    subscriptions: dict[str, Subscription] = field(default_factory=dict)

    def clear(self) -> None:
        self.subscriptions.clear()

    def add(self, subscription: Subscription, config: SimulatorConfig, now: datetime) -> None:
        active = [s for s in self.owned(subscription.api_key) if s.status(now) == "active"]
        if len(active) >= config.subscriptions_max_per_key:
            raise SubscriptionError(400, f"at most {config.subscriptions_max_per_key} active subscriptions")
        self.subscriptions[subscription.id] = subscription

    def owned(self, api_key: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.api_key == api_key]

    def page(self, api_key: str, *, expired: bool, page: int, size: int, now: datetime) -> list[Subscription]:
        wanted = "expired" if expired else "active"
        chosen = [s for s in self.owned(api_key) if s.status(now) == wanted]
        return chosen[(page - 1) * size : page * size]

    def get(self, api_key: str, subscription_id: str) -> Subscription:
        found = self.subscriptions.get(subscription_id)
        if found is None or found.api_key != api_key:
            raise SubscriptionError(404, "Subscription not found")
        return found

    def renew(
        self, api_key: str, subscription_id: str, config: SimulatorConfig, now: datetime
    ) -> Subscription:
        found = self.get(api_key, subscription_id)
        if (now - found.created_at).total_seconds() < config.subscription_init_s:
            raise SubscriptionError(409, "Subscription is still initialising; try again later")
        if found.status(now) == "expired":
            raise SubscriptionError(400, "Subscription has expired and cannot be renewed")
        renewed = found.expiring_at + config.subscription_renew_days * DAY
        if renewed > found.created_at + config.subscription_max_lifetime_days * DAY:
            raise SubscriptionError(400, "Renewal would extend the subscription past one year")
        found.expiring_at = renewed
        return found

    def delete(self, api_key: str, subscription_id: str) -> Subscription:
        found = self.get(api_key, subscription_id)
        del self.subscriptions[found.id]
        return found

    def active_at(self, moment: datetime) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.created_at <= moment < s.expiring_at]


def new_subscription_id() -> str:
    return str(uuid.uuid4())


def notices(
    subscription: Subscription, batch: Batch, population: Population, config: SimulatorConfig
) -> list[dict[str, Any]]:
    """The notification items this subscription gets for a batch, one per member, in change order."""
    by_member: dict[int, set[str]] = {}
    for record in batch.records:
        if subscription.wants(record, population, config):
            by_member.setdefault(record.employee_id, set()).update(record.changed_fields)
    return [_item(subscription, member, fields, config) for member, fields in by_member.items()]


def _item(
    subscription: Subscription, member: int, fields: Iterable[str], config: SimulatorConfig
) -> dict[str, Any]:
    item: dict[str, Any] = {"member_id": member, "status": config.webhook_status}
    if subscription.type == "employee_changes":
        item["changed_fields"] = sorted(fields)
    return item
