"""Prometheus metrics: one `Metrics` (own registry) per `Services`, shared by workers, the API and the CLI.

Counters are fed by small observer hooks at the narrowest place that knows the fact: the limiter
(grants and waits), the API client (statuses, 429s, credits), the collect job (sink outcomes) and the
queue's job wrapper (job outcomes). Queue and run gauges are read from Redis and MongoDB when scraped
(`render_metrics`), so any process can serve a fleet-wide view.

Labels hold only small fixed vocabularies (endpoint class, status code, state, outcome): never an
API key, a run id or an employee id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric

from worker import keys
from worker.webhook_metrics import WebhookMetrics

log = structlog.get_logger("employee_sync.metrics")

PREFIX = "employee_sync"

SINK_OUTCOMES = ("inserted", "changed", "unchanged", "tombstoned")

# Limiter waits: a free slot is ~0 s, a full booking horizon is LIMITER_MAX_AHEAD_S (2 s), a 429
# cool-down adds Retry-After (capped), and acquire gives up at 0.3 x JOB_TIMEOUT_S (5.4 s) plus one horizon.
WAIT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0)

# A data request is ready after a base delay plus a per-record time: seconds to hours.
READY_BUCKETS_S = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)
BULK_STATES = ("submitted", "ready", "done", "failed", "unknown")
POLL_OUTCOMES = ("pending", "ready", "error", "rate_limited")

_OUTCOME_WORD = re.compile(r"[a-z][a-z_]{0,31}")


def outcome_label(outcome: str) -> str:
    """A job's outcome text reduced to its leading word: `page 3: 1000 ids, ...` → `page`.

    Job outcomes carry details (page numbers, counts); a label must not, or every page makes a series.
    """
    match = _OUTCOME_WORD.match(outcome.strip().lower())
    return match.group(0) if match else "other"


class Metrics:
    """The metric families and the hooks that feed them. Implements the client's `ResponseObserver`
    and the limiter's `GrantObserver` protocols structurally (neither module imports this one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.limiter_grants = Counter(
            f"{PREFIX}_limiter_grants",
            "Rate-limit slots granted to this process",
            ["endpoint_class"],
            registry=r,
        )
        self.limiter_given_up = Counter(
            f"{PREFIX}_limiter_slots_given_up",
            "Slots this process woke too late for (over 5 ms) and left unused, booking again",
            ["endpoint_class"],
            registry=r,
        )
        self.limiter_limit = Gauge(
            f"{PREFIX}_limiter_limit_rps",
            "Configured upstream rate limit (requests per second) per endpoint class",
            ["endpoint_class"],
            registry=r,
        )
        self.limiter_wait = Histogram(
            f"{PREFIX}_limiter_wait_seconds",
            "Time from asking the limiter for a slot to the slot (includes 429 cool-downs)",
            ["endpoint_class"],
            buckets=WAIT_BUCKETS_S,
            registry=r,
        )
        self.upstream_responses = Counter(
            f"{PREFIX}_upstream_responses",
            "Upstream API responses by HTTP status (`error`: no response: timeout, connection failure)",
            ["endpoint_class", "status"],
            registry=r,
        )
        self.upstream_429 = Counter(
            f"{PREFIX}_upstream_429", "Upstream 429 (rate limited) responses", ["endpoint_class"], registry=r
        )
        self.credits_remaining = Gauge(
            f"{PREFIX}_credits_remaining",
            "Upstream credit balance in the last x-credits-remaining header this process saw (NaN: none)",
            registry=r,
        )
        self.queue_depth = Gauge(
            f"{PREFIX}_queue_depth",
            "Jobs in the queue: waiting, deferred (retries, back-pressure) and running; read when scraped",
            registry=r,
        )
        self.queue_oldest_age = Gauge(
            f"{PREFIX}_queue_oldest_job_age_seconds",
            "How long the longest-waiting due, not started job has been due (0: none); read when scraped",
            registry=r,
        )
        self.jobs = Counter(
            f"{PREFIX}_jobs", "Jobs run by this process, by job and outcome", ["job", "outcome"], registry=r
        )
        self.sink_outcomes = Counter(
            f"{PREFIX}_sink_outcomes", "Writes to the MongoDB mirror by outcome", ["outcome"], registry=r
        )
        self.bulk_requests = Counter(
            f"{PREFIX}_bulk_data_requests",
            "Data requests (bulk collect) entering each state: submitted, ready, done, failed, unknown",
            ["state"],
            registry=r,
        )
        self.bulk_requests_now = Gauge(
            f"{PREFIX}_bulk_data_requests_by_state",
            "Data requests in the ledger by state (unknown: maybe billed, needs a person); read when scraped",
            ["state"],
            registry=r,
        )
        self.bulk_polls = Counter(
            f"{PREFIX}_bulk_polls",
            "Polls of a data request's files: pending, ready, error (still pending), rate_limited",
            ["outcome"],
            registry=r,
        )
        self.bulk_time_to_ready = Histogram(
            f"{PREFIX}_bulk_time_to_ready_seconds",
            "From a data request's POST to its files being listed",
            buckets=READY_BUCKETS_S,
            registry=r,
        )
        self.bulk_records = Counter(
            f"{PREFIX}_bulk_records_ingested", "Profiles written to the mirror from bulk files", registry=r
        )
        self.bulk_bytes = Counter(
            f"{PREFIX}_bulk_bytes_downloaded", "Bytes of bulk files downloaded (compressed)", registry=r
        )
        self.runs = Gauge(f"{PREFIX}_runs", "Runs by state; read when scraped", ["state"], registry=r)
        self.backend_up = Gauge(
            f"{PREFIX}_scrape_backend_up",
            "1 if the last scrape could read the gauges kept in this backend (redis, mongodb), else 0",
            ["backend"],
            registry=r,
        )
        self.webhooks = WebhookMetrics(r)
        self.sync_credits = Counter(
            f"{PREFIX}_sync_credits_planned",
            "Collect credits this process's scheduler ticks planned, by sync (at most one per collect)",
            ["sync"],
            registry=r,
        )
        # Scrape-time freshness per sync (set by worker.metrics_server), exposed by a collector.
        self.freshness: dict[str, tuple[list[tuple[float, int]], float, float, int, int | None]] = {}
        r.register(_FreshnessCollector(self))
        self.credits_remaining.set(math.nan)
        for cls in keys.ENDPOINT_CLASSES:
            self.limiter_grants.labels(cls)
            self.limiter_given_up.labels(cls)
            self.upstream_429.labels(cls)
        for outcome in SINK_OUTCOMES:
            self.sink_outcomes.labels(outcome)
        for state in BULK_STATES:
            self.bulk_requests.labels(state)
        for outcome in POLL_OUTCOMES:
            self.bulk_polls.labels(outcome)

    def set_limits(self, rates_per_s: Mapping[str, float]) -> None:
        for endpoint_class, rate in rates_per_s.items():
            self.limiter_limit.labels(endpoint_class).set(rate)

    # Hooks: called on hot paths, in memory only, never raise.

    def observe_given_up(self, endpoint_class: str) -> None:
        self.limiter_given_up.labels(endpoint_class).inc()

    def observe_grant(self, endpoint_class: str, waited_s: float) -> None:
        self.limiter_grants.labels(endpoint_class).inc()
        self.limiter_wait.labels(endpoint_class).observe(max(0.0, waited_s))

    def observe_response(
        self, endpoint_class: str, status: int | None, credits_remaining: int | None
    ) -> None:
        self.upstream_responses.labels(endpoint_class, "error" if status is None else str(status)).inc()
        if status == 429:
            self.upstream_429.labels(endpoint_class).inc()
        if credits_remaining is not None:
            self.credits_remaining.set(credits_remaining)

    def observe_job(self, job: str, outcome: str) -> None:
        self.jobs.labels(job, outcome_label(outcome)).inc()

    def observe_sink(self, outcome: str) -> None:
        self.sink_outcomes.labels(outcome).inc()

    def observe_bulk_state(self, state: str) -> None:
        self.bulk_requests.labels(state).inc()

    def observe_bulk_poll(self, outcome: str, time_to_ready_s: float | None = None) -> None:
        self.bulk_polls.labels(outcome).inc()
        if time_to_ready_s is not None:
            self.bulk_time_to_ready.observe(max(0.0, time_to_ready_s))

    def observe_bulk_ingest(self, records: int, bytes_read: int) -> None:
        self.bulk_records.inc(records)
        self.bulk_bytes.inc(bytes_read)

    def observe_sync_credits(self, sync: str, credits: int) -> None:
        self.sync_credits.labels(sync).inc(max(0, credits))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _FreshnessCollector:
    """`mirror_staleness_seconds` (a gauge histogram: the distribution now, not events), the share
    over max-age and the credits this budget period, per sync, as last read by a scrape."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        staleness = GaugeHistogramMetricFamily(
            f"{PREFIX}_mirror_staleness_seconds",
            "Members of each sync by age of their mirrored profile (now - synced_at); read when scraped",
            labels=["sync"],
        )
        over = GaugeMetricFamily(
            f"{PREFIX}_mirror_over_max_age_ratio",
            "Share of a sync's members whose profile is older than max-age (or not mirrored yet)",
            labels=["sync"],
        )
        credits = GaugeMetricFamily(
            f"{PREFIX}_sync_credits_period",
            "Collect credits a sync planned in this budget period",
            labels=["sync"],
        )
        budget = GaugeMetricFamily(
            f"{PREFIX}_sync_credits_budget",
            "A sync's credits per budget period (absent: unlimited)",
            labels=["sync"],
        )
        for name, (buckets, total_age_s, ratio, spent, limit) in sorted(self._metrics.freshness.items()):
            count = buckets[-1][1] if buckets else 0
            rows = [(repr(float(le)), float(n)) for le, n in buckets] + [("+Inf", float(count))]
            staleness.add_metric([name], rows, gsum_value=total_age_s)
            over.add_metric([name], ratio)
            credits.add_metric([name], spent)
            if limit is not None:
                budget.add_metric([name], limit)
        return [staleness, over, credits, budget]
