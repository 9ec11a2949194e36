"""Serving the metrics: the scrape-time fleet gauges (queue from Redis, runs from MongoDB) and a
small aiohttp server for worker processes. Kept apart from `worker.metrics` (the families and the
hooks) so that module imports nothing of the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog
from aiohttp import web

from worker import keys
from worker.errors import MetricsPortError, TransientError
from worker.freshness import freshness_of
from worker.metrics import Metrics
from worker.queue import JobQueue
from worker.run_model import RunState
from worker.sync_budget import SyncBudgets

log = structlog.get_logger("employee_sync.metrics")


class _RunCounts(Protocol):
    async def count_runs_by_state(self) -> Mapping[RunState, int]: ...


class _Webhooks(Protocol):
    async def backlog(self) -> int: ...
    async def subscriptions(self) -> list[dict[str, Any]]: ...


class _LedgerCounts(Protocol):
    async def count_by_state(self) -> Mapping[str, int]: ...


class _Store(Protocol):
    @property
    def runs(self) -> _RunCounts: ...
    @property
    def webhooks(self) -> _Webhooks: ...
    @property
    def ledger(self) -> _LedgerCounts: ...


class ScrapeSources(Protocol):
    """What a scrape reads (`worker.runtime.Services` is one)."""

    @property
    def metrics(self) -> Metrics: ...
    @property
    def queue(self) -> JobQueue: ...
    @property
    def store(self) -> _Store: ...


async def refresh_scrape_gauges(services: ScrapeSources) -> None:
    """Read the fleet-wide gauges: queue depth and age from Redis, runs by state from MongoDB.

    A backend that does not answer marks `scrape_backend_up{backend}` 0 and leaves its gauges as they
    were; the rest of the scrape still works (a metrics endpoint must not fail with what it watches).
    """
    metrics = services.metrics
    try:
        depth = await services.queue.depth(keys.JOB_QUEUE)
        age_s = await services.queue.oldest_due_age_s(keys.JOB_QUEUE)
    except TransientError as exc:
        _backend_down(metrics, "redis", exc)
    else:
        metrics.queue_depth.set(depth)
        metrics.queue_oldest_age.set(age_s or 0.0)
        metrics.backend_up.labels("redis").set(1)
    try:
        counts = await services.store.runs.count_runs_by_state()
        requests = await services.store.ledger.count_by_state()
    except TransientError as exc:
        _backend_down(metrics, "mongodb", exc)
    else:
        for state, count in counts.items():
            metrics.runs.labels(state.value).set(count)
        for name, count in requests.items():
            metrics.bulk_requests_now.labels(name).set(count)
        metrics.backend_up.labels("mongodb").set(1)
    try:  # the webhook inbox and subscriptions (worker.webhook_metrics)
        metrics.webhooks.backlog.set(await services.store.webhooks.backlog())
        subscriptions = await services.store.webhooks.subscriptions()
    except TransientError as exc:
        _backend_down(metrics, "mongodb", exc)
    else:
        metrics.webhooks.set_subscriptions(subscriptions, datetime.now(UTC))
    await _refresh_freshness(services)


async def _refresh_freshness(services: Any) -> None:
    """Per-sync staleness for the scrape; a backend away leaves the last values (and says so above)."""
    store = getattr(services, "store", None)
    if store is None or not hasattr(store, "syncs") or not hasattr(services, "redis"):
        return  # a partial stand-in (tests of the scrape alone): no syncs to show
    settings = services.settings
    budgets = SyncBudgets(
        services.redis, period_s=settings.sync_budget_period_s, global_limit=settings.sync_credits_per_day
    )
    try:
        fresh = {}
        for sync in await store.syncs.list_all():
            view = await freshness_of(store, budgets, sync)
            row = (
                view.buckets,
                sum(view.ages_s),
                view.over_max_age_ratio,
                view.credits_today,
                sync.credits_per_day,
            )
            fresh[sync.name] = row
    except TransientError as exc:
        log.warning("metrics.freshness_unavailable", error=str(exc))
        return
    services.metrics.freshness = fresh


def _backend_down(metrics: Metrics, backend: str, exc: TransientError) -> None:
    log.warning("metrics.backend_unavailable", backend=backend, error=str(exc))
    metrics.backend_up.labels(backend).set(0)


async def render_metrics(services: ScrapeSources) -> tuple[bytes, str]:
    """Refresh the scrape-time gauges, then the text exposition and its content type."""
    await refresh_scrape_gauges(services)
    return services.metrics.render()


async def start_metrics_server(services: ScrapeSources, host: str, port: int) -> web.AppRunner:
    """Serve `GET /metrics` (render_metrics) for a worker process; stop it with `runner.cleanup()`."""

    async def handler(request: web.Request) -> web.Response:
        body, content_type = await render_metrics(services)
        return web.Response(body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        raise MetricsPortError(
            f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
            "each worker process on a host needs its own METRICS_PORT"
        ) from exc
    log.info("metrics.serving", host=host, port=port)
    return runner
