"""worker.change_events: changed fields and role events from two versions of a profile."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from simulator.clock import SimClock
from simulator.config import SimulatorConfig
from simulator.mutations import Change, ChangeKind
from simulator.population import Population
from simulator.world import World
from worker.change_events import (
    RoleEvent,
    changed_fields,
    diff_profiles,
    experience_events,
    match_positions,
)


def role(
    company_id: int | None,
    title: str,
    date_from: str,
    date_to: str | None = None,
    *,
    company_name: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "company_name": company_name or f"Company {company_id}",
        "title": title,
        "date_from": date_from,
        "date_to": date_to,
        **extra,
    }


ACME_OPEN = role(1, "Engineer", "2021-03-01")
ACME_CLOSED = role(1, "Engineer", "2021-03-01", "2024-05-01")
BETA_OPEN = role(2, "Senior Engineer", "2024-06-01")
OLD_JOB = role(3, "Intern", "2019-01-01", "2021-01-01")


class TestChangedFields:
    def test_only_differing_fields_in_document_order(self) -> None:
        old = {"id": 1, "headline": "a", "skills": ["x"], "last_updated": "2025-01-01"}
        new = {"id": 1, "headline": "b", "skills": ["x", "y"], "last_updated": "2025-02-01"}
        assert changed_fields(old, new) == ("headline", "skills", "last_updated")

    def test_ignore_drops_named_fields(self) -> None:
        old = {"headline": "a", "last_updated": "1"}
        new = {"headline": "a", "last_updated": "2"}
        assert changed_fields(old, new, ignore={"last_updated"}) == ()

    def test_added_and_removed_fields_count_even_when_null(self) -> None:
        old = {"id": 1, "gone": None}
        new = {"id": 1, "added": None}
        assert changed_fields(old, new) == ("added", "gone")

    def test_identical_documents_have_no_changes(self) -> None:
        doc = {"id": 1, "experience": [ACME_OPEN]}
        change = diff_profiles(doc, dict(doc))
        assert (change.fields, change.events, change.changed) == ((), (), False)


class TestEvents:
    def test_job_change_is_role_ended_then_role_started(self) -> None:
        events = experience_events([ACME_OPEN, OLD_JOB], [BETA_OPEN, ACME_CLOSED, OLD_JOB])
        assert events == [
            RoleEvent("role_ended", 1, "Company 1", "Engineer", "2021-03-01", "2024-05-01"),
            RoleEvent("role_started", 2, "Company 2", "Senior Engineer", "2024-06-01", None),
        ]

    def test_a_role_that_ends_with_nothing_new(self) -> None:
        events = experience_events([ACME_OPEN], [ACME_CLOSED])
        assert [(e.type, e.date_to, e.removed) for e in events] == [("role_ended", "2024-05-01", False)]

    def test_a_second_concurrent_open_role_is_started_only(self) -> None:
        events = experience_events([ACME_OPEN], [BETA_OPEN, ACME_OPEN])
        assert [(e.type, e.company_id) for e in events] == [("role_started", 2)]

    def test_promotion_on_the_same_position(self) -> None:
        promoted = role(1, "Staff Engineer", "2021-03-01")
        (event,) = experience_events([ACME_OPEN], [promoted])
        assert event.type == "role_changed"
        assert (event.title, event.previous_title) == ("Staff Engineer", "Engineer")
        assert (event.company_id, event.previous_company_id) == (1, 1)

    def test_company_change_on_the_same_start_month_is_role_changed(self) -> None:
        rebranded = role(9, "Engineer", "2021-03-01", company_name="Acme Holdings")
        (event,) = experience_events([ACME_OPEN, OLD_JOB], [rebranded, OLD_JOB])
        assert event.type == "role_changed"
        assert (event.company_id, event.company_name) == (9, "Acme Holdings")
        assert (event.previous_company_id, event.previous_company_name) == (1, "Company 1")

    def test_corrected_start_date_at_the_same_company_is_no_event(self) -> None:
        corrected = role(1, "Engineer", "2021-04-01")
        assert experience_events([ACME_OPEN], [corrected]) == []

    def test_promotion_and_ending_together(self) -> None:
        after = role(1, "Lead Engineer", "2021-03-01", "2024-05-01")
        events = experience_events([ACME_OPEN], [after])
        assert [e.type for e in events] == ["role_ended", "role_changed"]

    def test_titles_compare_without_case_or_spacing(self) -> None:
        recased = role(1, "  engineer ", "2021-03-01")
        assert experience_events([ACME_OPEN], [recased]) == []

    def test_company_without_id_is_keyed_by_name(self) -> None:
        before = role(None, "Founder", "2020-01-01", company_name="Side Project")
        after = role(None, "Founder", "2020-01-01", "2023-01-01", company_name="side  project")
        assert [e.type for e in experience_events([before], [after])] == ["role_ended"]

    def test_item_ids_win_over_heuristics(self) -> None:
        before = role(1, "Engineer", "2021-03-01", id="p1")
        after = role(2, "Manager", "2022-01-01", id="p1")
        (event,) = experience_events([before], [after])
        assert (event.type, event.previous_company_id, event.company_id) == ("role_changed", 1, 2)

    def test_removed_open_position_is_role_ended_marked_removed(self) -> None:
        (event,) = experience_events([ACME_OPEN, OLD_JOB], [OLD_JOB])
        assert (event.type, event.company_id, event.date_to, event.removed) == ("role_ended", 1, None, True)

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            ([ACME_OPEN], [ACME_OPEN, OLD_JOB]),  # history filled in: a closed position appeared
            ([ACME_OPEN, OLD_JOB], [ACME_OPEN]),  # a closed position vanished
            ([ACME_CLOSED], [ACME_OPEN]),  # a closed position re-opened (a correction)
            ([], []),
        ],
    )
    def test_no_event_for_corrections_of_history(
        self, old: list[dict[str, Any]], new: list[dict[str, Any]]
    ) -> None:
        assert experience_events(old, new) == []

    def test_month_fields_stand_in_for_a_missing_date_from(self) -> None:
        before = {"company_id": 1, "title": "A", "date_from_year": 2021, "date_from_month": 3}
        after = {**before, "date_to": "2024-01-01", "date_to_year": 2024}
        pairs, old_left, new_left = match_positions([before], [after])
        assert (len(pairs), old_left, new_left) == (1, [], [])
        assert [e.type for e in experience_events([before], [after])] == ["role_ended"]

    def test_a_new_position_sharing_an_old_ones_company_and_month_is_new(self) -> None:
        # Two job changes in one month: the person is back at company 1, same start month.
        short = role(1, "Intern", "2026-12-01", "2026-12-01")
        back = role(1, "Manager", "2026-12-01")
        events = experience_events([short, OLD_JOB], [back, short, OLD_JOB])
        assert [(e.type, e.title) for e in events] == [("role_started", "Manager")]

    def test_a_boomerang_hire_is_a_new_role(self) -> None:
        back = role(1, "Principal Engineer", "2025-01-01")
        events = experience_events([ACME_CLOSED, OLD_JOB], [back, ACME_CLOSED, OLD_JOB])
        assert [(e.type, e.date_from) for e in events] == [("role_started", "2025-01-01")]


class TestDiffProfiles:
    def test_garbage_experience_is_tolerated(self) -> None:
        change = diff_profiles({"experience": None}, {"experience": ["junk", ACME_OPEN]})
        assert change.fields == ("experience",)
        assert [e.type for e in change.events] == ["role_started"]

    def test_to_dict_is_json_ready(self) -> None:
        change = diff_profiles({"experience": [ACME_OPEN]}, {"experience": [ACME_CLOSED]})
        assert change.to_dict() == {
            "fields": ["experience"],
            "events": [
                {
                    "type": "role_ended",
                    "company_id": 1,
                    "company_name": "Company 1",
                    "title": "Engineer",
                    "date_from": "2021-03-01",
                    "date_to": "2024-05-01",
                    "previous_title": None,
                    "previous_company_id": None,
                    "previous_company_name": None,
                    "removed": False,
                }
            ],
        }


# The simulator's change kinds, diffed: the events the simulated world promises (simulator.mutations).
EXPECTED: dict[ChangeKind, set[tuple[str, ...]]] = {
    "role_started": {("role_ended", "role_started"), ("role_started",)},
    "role_ended": {("role_ended",)},
    "role_changed": {("role_changed",)},
    "other": {()},
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_simulated_changes_give_the_events_their_kind_names(kind: ChangeKind) -> None:
    population = Population(seed=3, size=300)
    seen: set[tuple[str, ...]] = set()
    for employee_id in list(population.iter_ids())[:300]:
        old = population.profile(employee_id)
        assert old is not None
        if kind == "role_ended" and not old["is_working"]:
            continue  # the world starts a role instead (simulator.world.World.change)
        population.apply_change(employee_id, Change(kind, date(2026, 12, 1)))
        new = population.profile(employee_id)
        assert new is not None
        types = tuple(event.type for event in diff_profiles(old, new).events)
        assert types in EXPECTED[kind], (employee_id, types)
        seen.add(types)
    assert seen == EXPECTED[kind]


@pytest.mark.slow
def test_every_change_of_a_busy_simulated_world_gives_its_events() -> None:
    # Half the population changes every week for two months: many profiles change several
    # times a month, the hard case for position identity (same company and start month).
    clock = SimClock(lambda: datetime(2026, 12, 7, tzinfo=UTC))
    world, population = World(clock), Population(seed=11, size=300)
    clock.advance(timedelta(days=56))
    world.catch_up(population, SimulatorConfig(seed=11, population=300, world_change_share_per_week=0.5))
    assert len(world.history) == 1200
    for record in world.history:
        old = population.profile_at(record.employee_id, record.version_before)
        new = population.profile_at(record.employee_id, record.version_before + 1)
        assert old is not None and new is not None
        types = tuple(event.type for event in diff_profiles(old, new).events)
        assert types in EXPECTED[record.kind], (record, types)
