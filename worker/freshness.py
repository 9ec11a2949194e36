"""How fresh a sync's part of the mirror is: staleness histogram, share over max-age, oldest profile,
credits this period against the budget, changes found per 100 re-collects.

Read by `employee-sync freshness`, `GET /v1/syncs/{name}` and the Prometheus scrape. Staleness is
`now - max(synced_at, verified_at)`: the fetch time of the stored profile, or the later time a
search confirmed its `last_updated` had not moved; a member not mirrored yet counts as over
max-age. It reads every member's `synced_at`, which is fine for the mirror sizes the Mongo-wire
server allows; a production mirror would keep per-sync buckets as counters instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from worker.run_model import Run, utcnow
from worker.sync_budget import SyncBudgets
from worker.sync_model import Sync

# Upper bounds (seconds) of the staleness buckets: seconds for tests and benchmarks, then days.
STALENESS_BUCKETS_S: tuple[float, ...] = (
    1, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86_400, 3 * 86_400, 7 * 86_400, 14 * 86_400, 30 * 86_400,
)  # fmt: skip
_RUNS_FOR_CHANGE_RATE = 50


class _Syncs(Protocol):
    async def member_ids(self, name: str) -> list[int]: ...
    async def verified_times(self, name: str) -> dict[int, datetime]: ...
    async def count_members(self, name: str, *, matching: bool | None = None) -> int: ...


class _Employees(Protocol):
    async def sync_times(self, employee_ids: list[int]) -> dict[int, datetime]: ...


class _Runs(Protocol):
    async def of_sync(self, sync_name: str, *, limit: int = 20) -> list[Run]: ...


class _Store(Protocol):
    @property
    def syncs(self) -> _Syncs: ...
    @property
    def employees(self) -> _Employees: ...
    @property
    def runs(self) -> _Runs: ...


@dataclass(slots=True)
class Freshness:
    sync: str
    max_age_s: float
    members: int
    unmatched: int
    mirrored: int
    over_max_age: int
    oldest_synced_at: datetime | None
    oldest_age_s: float | None
    buckets: list[tuple[float, int]] = field(default_factory=list)  # (le seconds, cumulative count)
    ages_s: list[float] = field(default_factory=list)  # not printed: the histogram's observations
    credits_today: int = 0
    credits_per_day: int | None = None
    global_credits_today: int = 0
    global_credits_per_day: int | None = None
    changes_per_100_recollects: float | None = None
    sweep_paused_reason: str | None = None

    @property
    def over_max_age_ratio(self) -> float:
        return self.over_max_age / self.members if self.members else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sync": self.sync,
            "members": self.members,
            "unmatched": self.unmatched,
            "mirrored": self.mirrored,
            "over_max_age": self.over_max_age,
            "over_max_age_ratio": round(self.over_max_age_ratio, 4),
            "oldest_synced_at": None if self.oldest_synced_at is None else self.oldest_synced_at.isoformat(),
            "oldest_age_s": None if self.oldest_age_s is None else round(self.oldest_age_s, 1),
            "staleness_histogram": [{"le_s": le, "count": n} for le, n in self.buckets],
            "credits_today": self.credits_today,
            "credits_per_day": self.credits_per_day,
            "global_credits_today": self.global_credits_today,
            "global_credits_per_day": self.global_credits_per_day,
            "changes_per_100_recollects": self.changes_per_100_recollects,
            "sweep_paused_reason": self.sweep_paused_reason,
        }


def _buckets(ages_s: list[float]) -> list[tuple[float, int]]:
    return [(le, sum(1 for a in ages_s if a <= le)) for le in STALENESS_BUCKETS_S]


def _change_rate(runs: list[Run]) -> float | None:
    changed = sum(r.final_counts.get("changed", 0) for r in runs)
    recollected = changed + sum(r.final_counts.get("unchanged", 0) for r in runs)
    return round(100 * changed / recollected, 2) if recollected else None


async def freshness_of(
    store: _Store, budgets: SyncBudgets, sync: Sync, *, now: datetime | None = None
) -> Freshness:
    now = now or utcnow()
    ids = await store.syncs.member_ids(sync.name)
    synced = await store.employees.sync_times(ids)
    verified = await store.syncs.verified_times(sync.name)
    # Fresh as of the later of the last collect and the last confirmation that it had not changed.
    times = {i: max(t, verified.get(i, t)) for i, t in synced.items()}
    ages = [(now - t).total_seconds() for t in times.values()]
    never = len(ids) - len(times)
    oldest = min(times.values()) if times else None
    view = await budgets.view(sync.name, sync.credits_per_day)
    return Freshness(
        sync=sync.name,
        max_age_s=sync.max_age_s,
        members=len(ids),
        unmatched=await store.syncs.count_members(sync.name, matching=False),
        mirrored=len(times),
        over_max_age=never + sum(1 for a in ages if a > sync.max_age_s),
        oldest_synced_at=oldest,
        oldest_age_s=None if oldest is None else (now - oldest).total_seconds(),
        buckets=_buckets(ages),
        ages_s=ages,
        credits_today=view.spent,
        credits_per_day=sync.credits_per_day,
        global_credits_today=view.global_spent,
        global_credits_per_day=view.global_limit,
        changes_per_100_recollects=_change_rate(
            await store.runs.of_sync(sync.name, limit=_RUNS_FOR_CHANGE_RATE)
        ),
        sweep_paused_reason=sync.sweep_paused_reason,
    )
