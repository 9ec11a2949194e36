"""What one tick of a sync collects: the delta (query syncs), then the staleness sweep, within budget.

1. Delta (query syncs): an ES-DSL search for the sync's query AND `last_updated >= watermark - lag`
   (the whole query on the first tick). Every id found is a member (new matches join). An id is
   collected only if the mirror's `last_updated` differs from the API's: ids the mirror holds with
   an older `last_updated` than the window are changed for certain; for ids the mirror already
   holds inside the window, one more search asks which of them have a `last_updated` newer than the
   mirror's (per-id `range gt`, about 120 ids a request). Members whose changes make
   them stop matching are found with the query negated, and marked.
2. Sweep: members not yet mirrored, then members whose `synced_at` will pass max-age before the
   next tick, oldest first, up to what the budget allows this period. Never a full refresh.
3. Path (`plan_sweep`): the planner picks collect or bulk for the run the two make.

The watermark is not moved here: `jobs.scheduler` moves it when the run has committed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from config import Settings
from jobs.planner import plan_items
from worker.errors import RateLimitedError
from worker.run_model import utcnow
from worker.runtime import WorkerContext
from worker.sync_budget import BudgetView
from worker.sync_model import Sync, SyncSource

# 3 clauses per id (bool, term, range) under the API's 1,024-clause limit, and the body under its
# 15,000 characters (about 110 a clause).
_VERIFY_BATCH = 300
_VERIFY_CHARS = 13_500


@dataclass(slots=True)
class Plan:
    delta: list[str] = field(default_factory=list)  # item keys, collected first
    sweep: list[str] = field(default_factory=list)
    watermark_from: str | None = None
    delta_complete: bool = True
    search_requests: int = 0
    delta_found: int = 0  # ids the delta search returned (changed in the window, or new matches)
    new_members: int = 0
    unmatched: int = 0
    sweep_due: int = 0  # members due for the sweep (before the budget cut)
    sweep_verified: int = 0  # due members confirmed unchanged by search (no collect)
    found_ids: list[int] = field(default_factory=list)  # what the delta search returned
    # How long the sync's last run took from plan to finish: the sweep plans that much earlier.
    lead_s: float = 0.0
    sweep_paused_reason: str | None = None
    via: str = "collect"

    def summary(self) -> dict[str, Any]:
        return {
            "delta": len(self.delta),
            "sweep": len(self.sweep),
            "delta_found": self.delta_found,
            "search_requests": self.search_requests,
            "new_members": self.new_members,
            "unmatched": self.unmatched,
            "sweep_due": self.sweep_due,
            "sweep_verified": self.sweep_verified,
            "delta_complete": self.delta_complete,
            "watermark_from": self.watermark_from,
            "via": self.via,
            "lead_s": round(self.lead_s, 3),
        }


def plan_sweep(settings: Settings, items: Sequence[str]) -> str:
    """How a tick's run (its delta, then its sweep: one run, one path) is collected: the planner's
    choice (`jobs.planner`) for that many ids, none of them fresh (the sweep picked only members
    that are due). Bulk at BULK_MIN_ITEMS or more; a run holding a name not yet resolved to an id
    stays on collect (data requests take ids only)."""
    kind = "ids" if all(key.startswith("id:") for key in items) else "names"
    return plan_items(settings, kind, len(items), 0, "auto").choice


def window_start(watermark: str, lag_s: float) -> str:
    """`watermark - lag`, written the way the API writes `last_updated` (date or date-time)."""
    moment = datetime.fromisoformat(watermark.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    start = moment - timedelta(seconds=lag_s)
    if len(watermark) == 10:  # a date: the window starts at the start of that day
        return start.date().isoformat()
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def search_all(ctx: WorkerContext, body: dict[str, Any], plan: Plan) -> list[int]:
    """Every id the search returns, in pages of up to 1,000 (each page one search slot)."""
    ids: dict[int, None] = {}
    after: str | None = None
    settings = ctx["settings"]
    while True:
        await ctx["limiter"].acquire("search")
        try:
            page = await ctx["client"].search(
                body, after=after, items_per_page=settings.search_items_per_page
            )
        except RateLimitedError as exc:
            await ctx["limiter"].penalize("search", exc.retry_after_s)
            raise
        plan.search_requests += 1
        ids.update(dict.fromkeys(page.ids))
        if page.next_after is None:
            return list(ids)
        after = page.next_after


async def plan_delta(ctx: WorkerContext, sync: Sync, plan: Plan) -> list[int]:
    """The ids of a query sync whose API version differs from the mirror's (see module doc)."""
    assert sync.query_json is not None
    services, now = ctx["services"], utcnow()
    query = json.loads(sync.query_json)["query"]
    plan.watermark_from = sync.watermark
    if sync.watermark is None:
        found = await search_all(ctx, {"query": query}, plan)
        lower = None
    else:
        lower = window_start(sync.watermark, ctx["settings"].sync_delta_lag_s)
        window = {"range": {"last_updated": {"gte": lower}}}
        found = await search_all(ctx, {"query": {"bool": {"filter": [query, window]}}}, plan)
        left = await search_all(ctx, {"query": {"bool": {"filter": [window], "must_not": [query]}}}, plan)
        plan.unmatched = await services.store.syncs.mark_unmatched(sync.name, left, now)
    plan.delta_found, plan.found_ids = len(found), found
    plan.new_members = await services.store.syncs.add_matches(sync.name, found, now)
    mirrored = await services.store.employees.last_updated_of(found)
    certain = [
        i for i in found if mirrored.get(i) is None or (lower is not None and str(mirrored[i]) < lower)
    ]
    doubtful = {i: str(mirrored[i]) for i in found if i not in certain}
    return certain + await _newer_than_mirror(ctx, doubtful, plan)


async def _newer_than_mirror(ctx: WorkerContext, mirrored: dict[int, str], plan: Plan) -> list[int]:
    """Which of these ids the API holds with a `last_updated` newer than the mirror's."""
    newer: list[int] = []
    for should in _verify_batches(mirrored):
        body = {"query": {"bool": {"should": should, "minimum_should_match": 1}}}
        newer += await search_all(ctx, body, plan)
    return newer


def _verify_batches(mirrored: dict[int, str]) -> list[list[dict[str, Any]]]:
    """Per-id clauses `id = i AND last_updated > mirror's`, batched under the API's body limits."""
    batches: list[list[dict[str, Any]]] = [[]]
    size = 0
    for i in sorted(mirrored):
        clause = {"bool": {"filter": [{"term": {"id": i}}, {"range": {"last_updated": {"gt": mirrored[i]}}}]}}
        length = len(json.dumps(clause)) + 2
        if batches[-1] and (size + length > _VERIFY_CHARS or len(batches[-1]) >= _VERIFY_BATCH):
            batches.append([])
            size = 0
        batches[-1].append(clause)
        size += length
    return [b for b in batches if b]


async def plan_sweep_items(
    ctx: WorkerContext, sync: Sync, exclude: Sequence[int], room: int | None, plan: Plan
) -> list[str]:
    """Members due before the next tick, never-mirrored first then oldest first; at most `room`
    collects (None: no limit). A member is as fresh as the later of its `synced_at` and its
    `verified_at`. With `sweep_check`, due members whose `last_updated` has not moved are confirmed
    (`verified_at` = now) instead of bought again. Sets `plan.sweep_due` (due before the cut)."""
    store, now = ctx["services"].store, utcnow()
    await _resolve_names(ctx, sync)
    skip = set(exclude)
    members = [i for i in await store.syncs.member_ids(sync.name) if i not in skip]
    synced = await store.employees.sync_times(members)
    verified = await store.syncs.verified_times(sync.name)
    mirrored = await store.employees.last_updated_of(members)
    never = [f"id:{i}" for i in members if i not in mirrored] + await store.syncs.unresolved_keys(sync.name)
    # Due: would pass max-age before the next tick's run has collected it.
    due_before = now - timedelta(seconds=max(0.0, sync.max_age_s - sync.every_s - plan.lead_s))
    fresh_at = {i: max(t, verified.get(i, t)) for i, t in synced.items()}
    stale = sorted((i for i, t in fresh_at.items() if t < due_before), key=lambda i: fresh_at[i])
    if sync.sweep_check and stale:
        known = {i: str(mirrored[i]) for i in stale if mirrored.get(i)}
        moved = set(await _newer_than_mirror(ctx, known, plan))
        unchanged = [i for i in known if i not in moved]
        await store.syncs.mark_verified(sync.name, unchanged, now)
        plan.sweep_verified = len(unchanged)
        stale = [i for i in stale if i not in known or i in moved]
    due = never + [f"id:{i}" for i in stale]
    plan.sweep_due = len(due)
    return due if room is None else due[:room]


async def _resolve_names(ctx: WorkerContext, sync: Sync) -> None:
    if sync.source is not SyncSource.NAMES:
        return
    store = ctx["services"].store
    keys = await store.syncs.unresolved_keys(sync.name)
    found = await store.employees.ids_for_names([k.split(":", 1)[1] for k in keys])
    await store.syncs.resolve_names(sync.name, {f"name:{n}": i for n, i in found.items()})


def budget_reason(view: BudgetView, planned: int, period_s: float) -> str:
    """Why the sweep stopped short: which budget, how much of it is used, when it refills."""
    ends = datetime.fromtimestamp(view.period_ends_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    sync_left = None if view.limit is None else view.limit - view.spent
    global_left = None if view.global_limit is None else view.global_limit - view.global_spent
    if sync_left is not None and (global_left is None or sync_left <= global_left):
        which = f"this sync's {view.limit} credits per period"
        used = view.spent + planned
    else:
        which = f"the fleet-wide ceiling of {view.global_limit} credits per period"
        used = view.global_spent + planned
    period = "day" if period_s == 86_400 else f"{period_s:g} s period"
    return f"credit budget reached: {used} of {which} ({period}) planned; the sweep resumes at {ends}"
