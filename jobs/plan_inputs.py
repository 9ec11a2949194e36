"""What the planner needs to know about an input, read without spending credits.

Ids: how many distinct valid ones, and how many of them are fresh in the mirror (one `$in` read
per 5,000). A search: how many profiles it matches, by one one-item search page through the
search rate limit (`x-total-results`; one search request, billed on plans where search is).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from config import Settings
from jobs.inputs import InputKind, Rejected, parse_lines
from jobs.planner import Plan, plan_items, plan_search
from worker.client import CoresignalClient
from worker.errors import InputError, RateLimitedError
from worker.run_model import utcnow
from worker.runtime import Services, build_limiter

_BATCH = 5_000


async def plan_lines(
    services: Services, lines: Iterable[tuple[int, str | InputError]], kind: InputKind, via: str
) -> Plan:
    seen: set[str] = set()
    fresh = 0
    batch: list[int] = []
    since = utcnow() - timedelta(seconds=services.settings.freshness_ttl_s)
    for record in parse_lines(lines, kind):
        if isinstance(record, Rejected) or record.key in seen:
            continue
        seen.add(record.key)
        if record.key.startswith("id:"):
            batch.append(int(record.key[3:]))
        if len(batch) >= _BATCH:
            fresh += len(await services.store.employees.fresh_ids(batch, synced_since=since))
            batch = []
    fresh += len(await services.store.employees.fresh_ids(batch, synced_since=since))
    return plan_items(services.settings, kind, len(seen), fresh, via)


async def count_matches(services: Services, body: dict[str, Any]) -> int:
    """One search request through the fleet's search limiter (a 429 cools the whole fleet down)."""
    settings: Settings = services.settings
    api_key = settings.require_api_key()
    limiter = build_limiter(settings, services.redis, api_key)
    timeout_s = settings.request_timeout_s
    client = CoresignalClient.open(settings.coresignal_base_url, api_key, timeout_s=timeout_s)
    try:
        await limiter.acquire("search")
        try:
            return await client.count(body)
        except RateLimitedError as exc:
            await limiter.penalize("search", exc.retry_after_s)
            raise
    finally:
        await client.close()


async def plan_query(services: Services, body: dict[str, Any], max_profiles: int | None, via: str) -> Plan:
    return plan_search(services.settings, await count_matches(services, body), max_profiles, via)
