"""Webhook and subscription metric families (registered on `worker.metrics.Metrics.registry`).

Counters are fed where the fact is known (the receiver, the expand job); the gauges about the
inbox and the subscriptions are read from MongoDB when scraped (`refresh_webhook_gauges`).
Subscription ids are labels: they are few (one per selection) and name no person or secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "employee_sync"
WEBHOOK_CODES = ("202", "400", "404", "413", "503")
# Notice to refreshed profile: a few seconds with an idle fleet, minutes behind a big run.
LAG_BUCKETS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            f"{PREFIX}_webhook_requests", "Webhook receiver requests by HTTP status", ["code"], registry=r
        )
        self.notices = Counter(
            f"{PREFIX}_webhook_notices",
            "Notices received (accepted bodies) by status",
            ["notice_status"],
            registry=r,
        )
        self.duplicates = Counter(
            f"{PREFIX}_webhook_duplicates_dropped",
            "Duplicates dropped: `body` an exact re-sent body, `notice` a member already noticed this week",
            ["kind"],
            registry=r,
        )
        self.lag = Histogram(
            f"{PREFIX}_webhook_notice_to_refresh_seconds",
            "From receiving a webhook body to its refresh run finishing",
            buckets=LAG_BUCKETS_S,
            registry=r,
        )
        self.backlog = Gauge(
            f"{PREFIX}_webhook_inbox_backlog", "Inbox entries not expanded into refreshes yet", registry=r
        )
        self.expires_in = Gauge(
            f"{PREFIX}_subscription_expires_in_seconds",
            "Seconds until each subscription expires (negative: expired)",
            ["subscription"],
            registry=r,
        )
        self.last_delivery_age = Gauge(
            f"{PREFIX}_subscription_last_delivery_age_seconds",
            "Seconds since each subscription last delivered (since creation when it never did)",
            ["subscription"],
            registry=r,
        )
        self.silent = Gauge(
            f"{PREFIX}_subscription_silent",
            "1 when a subscription delivered nothing for longer than its cadence plus slack (alert on it)",
            ["subscription"],
            registry=r,
        )
        for code in WEBHOOK_CODES:
            self.requests.labels(code)
        for kind in ("body", "notice"):
            self.duplicates.labels(kind)

    def observe_request(self, code: int) -> None:
        self.requests.labels(str(code)).inc()

    def set_subscriptions(self, subscriptions: Sequence[dict[str, Any]], now: datetime) -> None:
        for gauge in (self.expires_in, self.last_delivery_age, self.silent):
            gauge.clear()
        for sub in subscriptions:
            label = str(sub["_id"])
            expiring_at = sub.get("expiring_at")
            if isinstance(expiring_at, datetime):
                self.expires_in.labels(label).set((expiring_at - now).total_seconds())
            last = sub.get("last_delivery_at") or sub.get("created_at")
            if isinstance(last, datetime):
                age_s = (now - last).total_seconds()
                self.last_delivery_age.labels(label).set(age_s)
                self.silent.labels(label).set(1 if age_s > float(sub.get("silence_after_s") or 0) else 0)
