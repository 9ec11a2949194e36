"""A world that changes: a deterministic mutation model over the population, on the world clock.

Time is counted in day rounds from the world's `epoch` (the clock's time at start or reset): round
k happens when the clock passes `epoch + k days`. In round k, the ids drawn from
`Random(f"{seed}:world:{k}")` change, as many as keep the running total at
`floor(k * population * share_per_week / 7)`, so a week changes exactly that share; each draws
a kind from `world_kind_weights` (`simulator.mutations`). The same seed, population and sequence
of advances always give the same changes, whatever the wall clock says; only dates follow it.

Every change, from a round or from `POST /_sim/mutate`, is a `ChangeRecord` in `history` (what
benchmarks read to compute staleness) and in `pending` until the next webhook batch takes it.
After every `webhook_cadence_days`-th round, `pending` becomes a `Batch` (weekly, as the API's
"you will receive updates next Monday"). Rounds only run when something calls `catch_up` (an
advance or a mutate), so wall time alone never changes a profile behind a test's back.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from simulator.clock import SimClock
from simulator.config import SimulatorConfig
from simulator.mutations import CHANGE_KINDS, EXPERIENCE_KINDS, Change, ChangeKind
from simulator.population import Population

type Source = Literal["world", "admin"]
DAY = timedelta(days=1)
# Not fields of the profile that change: every change moves last_updated by definition.
_NOT_CHANGES = frozenset({"last_updated"})


@dataclass(frozen=True, slots=True)
class ChangeRecord:
    employee_id: int
    kind: ChangeKind
    at: datetime  # world clock time the change became visible
    wall_ts: float  # the same moment on the real clock (unix seconds), for staleness
    version_before: int  # the profile's version before this change (to rebuild the old one)
    last_updated: str
    changed_fields: tuple[str, ...]
    source: Source

    @property
    def experience(self) -> bool:
        return self.kind in EXPERIENCE_KINDS

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.employee_id,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "wall_ts": round(self.wall_ts, 6),
            "last_updated": self.last_updated,
            "changed_fields": list(self.changed_fields),
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Batch:
    """The changes one webhook delivery round reports, as of `at` (world clock)."""

    at: datetime
    records: tuple[ChangeRecord, ...]


@dataclass(eq=False)
class World:
    clock: SimClock
    wall_ts: Callable[[], float] = time.time
    epoch: datetime = field(init=False)
    days_done: int = 0
    history: list[ChangeRecord] = field(default_factory=list)
    pending: list[ChangeRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.epoch = self.clock.now()

    def reset(self) -> None:
        """A fresh world from now on: no history, nothing pending, round 0."""
        self.epoch = self.clock.now()
        self.days_done = 0
        self.history.clear()
        self.pending.clear()

    def change(
        self,
        population: Population,
        employee_id: int,
        kind: ChangeKind,
        at: datetime,
        source: Source,
    ) -> ChangeRecord | None:
        """Apply one change now; None if the id is absent. `role_ended` on someone without an
        open role starts one instead (the record says which kind was applied)."""
        old = population.profile(employee_id)
        if old is None:
            return None
        if kind == "role_ended" and not old.get("is_working"):
            kind = "role_started"
        version_before = population.version(employee_id)
        population.apply_change(employee_id, Change(kind, at.date()))
        new = population.profile(employee_id)
        assert new is not None
        record = ChangeRecord(
            employee_id,
            kind,
            at,
            self.wall_ts(),
            version_before,
            str(new.get("last_updated")),
            changed_fields(old, new),
            source,
        )
        self.history.append(record)
        self.pending.append(record)
        return record

    def catch_up(self, population: Population, config: SimulatorConfig) -> list[Batch]:
        """Run every day round the clock has passed; the batches due on the way, oldest first.

        (`simulator.world_admin` does the same in small steps, yielding to the event loop.)
        """
        batches: list[Batch] = []
        for day in self.due_days():
            for employee_id, kind in daily_picks(population, config, day):
                self.change(population, employee_id, kind, self.day_time(day), "world")
            batch = self.end_day(day, config)
            if batch is not None:
                batches.append(batch)
        return batches

    def due_days(self) -> range:
        """Day rounds the clock has passed and that have not run yet."""
        passed = int((self.clock.now() - self.epoch) / DAY)
        return range(self.days_done + 1, max(passed, self.days_done) + 1)

    def day_time(self, day: int) -> datetime:
        return self.epoch + day * DAY

    def end_day(self, day: int, config: SimulatorConfig) -> Batch | None:
        """Mark round `day` done; the webhook batch if one falls due with it."""
        self.days_done = day
        if day % config.webhook_cadence_days == 0:
            return self.flush(self.day_time(day))
        return None

    def flush(self, at: datetime) -> Batch:
        """Everything pending, as one batch; pending starts empty again."""
        batch = Batch(at, tuple(self.pending))
        self.pending.clear()
        return batch

    def records_since(self, since: datetime | None) -> Iterator[ChangeRecord]:
        return (record for record in self.history if since is None or record.at >= since)


def daily_picks(population: Population, config: SimulatorConfig, day: int) -> list[tuple[int, ChangeKind]]:
    """Who changes in round `day`, and how; deterministic in (seed, population size, day)."""
    weekly = population.size * config.world_change_share_per_week
    # A tiny epsilon so 0.05 * 200 * 7 / 7 counts 10, not 9.999...
    count = math.floor(day * weekly / 7 + 1e-9) - math.floor((day - 1) * weekly / 7 + 1e-9)
    kinds = [kind for kind in CHANGE_KINDS if config.world_kind_weights.get(kind, 0) > 0]
    if count <= 0 or not kinds:
        return []
    rng = random.Random(f"{config.seed}:world:{day}")
    indices = rng.sample(range(population.size), min(count, population.size))
    drawn = rng.choices(kinds, [config.world_kind_weights[kind] for kind in kinds], k=len(indices))
    picks = []
    for index, kind in zip(indices, drawn, strict=True):
        employee_id = Population.id_at(index)
        if population.exists(employee_id):
            picks.append((employee_id, kind))
    return picks


def changed_fields(old: dict[str, Any], new: dict[str, Any]) -> tuple[str, ...]:
    """Top-level fields whose value differs (last_updated aside), in document order."""
    names = list(new) + [name for name in old if name not in new]
    return tuple(name for name in names if name not in _NOT_CHANGES and old.get(name) != new.get(name))
