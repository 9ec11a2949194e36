"""The world model without HTTP: the clock, day rounds and change records (simulator.world)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulator.clock import SimClock
from simulator.config import SimulatorConfig
from simulator.population import Population
from simulator.world import World, changed_fields, daily_picks

START = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def frozen_clock() -> SimClock:
    return SimClock(lambda: START)


class TestClock:
    def test_now_is_wall_time_plus_the_offset(self) -> None:
        clock = frozen_clock()
        assert clock.now() == START
        assert clock.advance(timedelta(days=2)) == START + timedelta(days=2)
        assert clock.offset == timedelta(days=2)
        clock.reset()
        assert clock.now() == START

    def test_it_never_goes_back(self) -> None:
        with pytest.raises(ValueError, match="forward"):
            frozen_clock().advance(timedelta(seconds=-1))


class TestDailyPicks:
    @pytest.mark.parametrize(
        ("size", "share", "weekly"), [(200, 0.05, 10), (500, 0.05, 25), (1000, 0.1, 100)]
    )
    def test_a_week_changes_exactly_its_share(self, size: int, share: float, weekly: int) -> None:
        population = Population(seed=1, size=size)
        config = SimulatorConfig(population=size, world_change_share_per_week=share)
        for week in range(3):
            days = range(7 * week + 1, 7 * week + 8)
            assert sum(len(daily_picks(population, config, day)) for day in days) == weekly

    def test_removed_profiles_do_not_change(self) -> None:
        population = Population(seed=1, size=50)
        config = SimulatorConfig(population=50, world_change_share_per_week=1.0)
        picked = {i for day in range(1, 8) for i, _ in daily_picks(population, config, day)}
        for employee_id in picked:
            population.remove(employee_id)
        assert all(daily_picks(population, config, day) == [] for day in range(1, 8))

    def test_zero_weights_change_nothing(self) -> None:
        population = Population(seed=1, size=50)
        config = SimulatorConfig(population=50, world_kind_weights={"other": 0.0})
        assert daily_picks(population, config, 1) == []


class TestWorld:
    def test_catch_up_runs_passed_rounds_and_batches_each_cadence(self) -> None:
        clock = frozen_clock()
        world = World(clock, wall_ts=lambda: 123.0)
        population = Population(seed=1, size=700)
        config = SimulatorConfig(population=700, webhook_cadence_days=7)
        clock.advance(timedelta(days=15, hours=1))
        batches = world.catch_up(population, config)
        assert world.days_done == 15
        assert [batch.at for batch in batches] == [START + timedelta(days=7), START + timedelta(days=14)]
        assert [len(batch.records) for batch in batches] == [35, 35]
        assert len(world.pending) == 5  # day 15's changes wait for the next batch
        assert all(record.wall_ts == 123.0 for record in world.history)
        assert world.catch_up(population, config) == []  # nothing new passed

    def test_records_rebuild_the_before_and_after_documents(self) -> None:
        clock = frozen_clock()
        world, population = World(clock), Population(seed=1, size=10)
        before = population.profile(10_000)
        record = world.change(population, 10_000, "other", clock.now(), "admin")
        assert record is not None and before is not None
        assert population.profile_at(10_000, record.version_before) == before
        after = population.profile_at(10_000, record.version_before + 1)
        assert after == population.profile(10_000)
        assert record.changed_fields == changed_fields(before, after)
        assert record.last_updated.startswith(START.date().isoformat())

    def test_changes_to_absent_ids_are_none(self) -> None:
        clock = frozen_clock()
        assert World(clock).change(Population(seed=1, size=10), 10_001, "other", clock.now(), "admin") is None

    def test_changed_fields_ignore_last_updated(self) -> None:
        assert changed_fields({"a": 1, "last_updated": "x"}, {"a": 2, "last_updated": "y", "b": 0}) == (
            "a",
            "b",
        )
