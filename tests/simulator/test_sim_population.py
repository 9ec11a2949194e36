"""The synthetic population: deterministic profiles, collect-key resolution, and changes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from typing import Any
from urllib.parse import quote

import pytest

from simulator.population import Population
from simulator.slugs import base36

SPEC_MANAGEMENT_LEVELS = {
    "Specialist", "Manager", "Senior", "Director", "Owner", "Intern", "Head", "C-Level",
    "President/Vice President", "Founder", "Partner",
}  # fmt: skip
TOP_LEVEL_FIELDS = {
    "id", "public_profile_id", "full_name", "name_first", "name_middle", "name_last", "headline",
    "generated_headline", "websites_linkedin", "shorthand_names", "last_updated", "is_deleted",
    "is_hidden", "picture_url", "description", "location_raw_address", "location_country",
    "location_regions", "location_city", "location_state", "location_country_iso_2",
    "location_country_iso_3", "connections_count", "follower_count", "is_working", "company_id",
    "job_title", "management_level", "is_decision_maker", "department",
    "total_experience_duration", "total_experience_duration_months", "experience", "education",
    "skills", "recommendations_count", "recommendations", "languages", "certifications",
    "courses", "awards", "publications", "organizations", "patents", "activity",
}  # fmt: skip


def digest(document: dict[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def existing(population: Population, employee_id: int) -> dict[str, Any]:
    document = population.profile(employee_id)
    assert document is not None
    return document


@pytest.fixture
def population() -> Population:
    return Population(seed=42, size=1_000)


class TestIds:
    def test_ids_start_at_10000_with_a_stride_of_7(self, population: Population) -> None:
        ids = list(population.iter_ids())
        assert ids[:3] == [10_000, 10_007, 10_014]
        assert len(ids) == 1_000
        assert ids[-1] == 10_000 + 7 * 999

    def test_ids_in_the_gaps_and_past_the_end_do_not_exist(self, population: Population) -> None:
        for missing in (9_993, 10_001, 10_006, 10_000 + 7 * 1_000, 0):
            assert population.profile(missing) is None
            assert population.resolve(str(missing)) is None


class TestDeterminism:
    def test_same_seed_gives_the_same_profile_in_a_fresh_population(self) -> None:
        assert digest(Population(42, 1_000).profile(10_700)) == digest(Population(42, 1_000).profile(10_700))

    def test_a_profile_does_not_depend_on_population_size(self) -> None:
        assert digest(Population(42, 101).profile(10_700)) == digest(Population(42, 20_000).profile(10_700))

    def test_another_seed_gives_another_person(self) -> None:
        assert digest(Population(42, 10).profile(10_000)) != digest(Population(43, 10).profile(10_000))


class TestDocument:
    def test_has_every_spec_field(self, population: Population) -> None:
        document = existing(population, 10_000)
        assert document.keys() >= TOP_LEVEL_FIELDS
        assert document["id"] == 10_000

    def test_shorthand_names_are_current_then_historical(self, population: Population) -> None:
        document = existing(population, 10_000)
        first, last = document["name_first"].lower(), document["name_last"].lower()
        assert document["shorthand_names"] == [f"{first}-{last}-7ps", f"{first}{last}7ps"]
        assert document["websites_linkedin"] == f"https://www.linkedin.com/in/{first}-{last}-7ps/"

    def test_experience_is_newest_first_with_only_the_top_role_open(self, population: Population) -> None:
        for employee_id in list(population.iter_ids())[:200]:
            document = existing(population, employee_id)
            experience = document["experience"]
            assert 1 <= len(experience) <= 5 + population.version(employee_id)
            assert [item["order_in_profile"] for item in experience] == list(range(1, len(experience) + 1))
            starts = [item["date_from"] for item in experience]
            assert starts == sorted(starts, reverse=True)
            open_roles = [item for item in experience if item["date_to"] is None]
            assert len(open_roles) == document["is_working"]
            if document["is_working"]:
                assert experience[0]["date_to"] is None
                assert experience[0]["title"] == document["job_title"]
                assert experience[0]["company_id"] == document["company_id"]

    def test_sizes_and_vocabulary_are_realistic(self, population: Population) -> None:
        documents = [existing(population, i) for i in population.iter_ids()]
        sizes = [len(json.dumps(d, separators=(",", ":"))) for d in documents]
        assert 2_000 <= sum(sizes) / len(sizes) <= 5_000
        assert all(len(d["education"]) <= 2 for d in documents)
        assert all(skill == skill.lower() for d in documents for skill in d["skills"])
        levels = Counter(d["management_level"] for d in documents if d["is_working"])
        assert set(levels) <= SPEC_MANAGEMENT_LEVELS
        assert {"Manager", "Director", "Specialist"} <= set(levels)
        countries = {d["location_country"] for d in documents}
        assert {"Germany", "United States"} <= countries
        assert "Engineering and Technical" in {d["department"] for d in documents}
        deleted = sum(d["is_deleted"] for d in documents)
        assert 0 < deleted < len(documents) * 0.05

    def test_docs_naming_renames_the_url_fields(self) -> None:
        document = existing(Population(42, 10, naming="docs"), 10_000)
        assert "websites_professional_network" in document
        assert "websites_linkedin" not in document
        assert "company_professional_network_url" in document["experience"][0]
        assert "company_linkedin_url" not in document["experience"][0]

    def test_last_updated_format_is_switchable(self) -> None:
        as_datetime = existing(Population(42, 10), 10_000)["last_updated"]
        as_date = existing(Population(42, 10, date_format="date"), 10_000)["last_updated"]
        assert as_datetime == f"{as_date}T00:00:00.000Z"
        assert len(as_date) == len("2025-09-12")


class TestResolve:
    @pytest.fixture
    def names(self, population: Population) -> list[str]:
        names: list[str] = existing(population, 10_700)["shorthand_names"]
        return names

    def test_digits_are_an_id(self, population: Population) -> None:
        assert population.resolve("10700") == 10_700

    def test_both_shorthand_names_resolve(self, population: Population, names: list[str]) -> None:
        assert [population.resolve(name) for name in names] == [10_700, 10_700]

    @pytest.mark.parametrize(
        "template",
        [
            "https://www.linkedin.com/in/{}/",
            "https://www.linkedin.com/in/{}",
            "http://linkedin.com/in/{}/",
            "www.linkedin.com/in/{}/",
            "linkedin.com/in/{}",
            "https://www.linkedin.com/in/{}/?originalSubdomain=de",
            "https://de.linkedin.com/in/{}/",
            "HTTPS://WWW.LINKEDIN.COM/in/{}/",
        ],
    )
    def test_profile_url_variants_resolve(
        self, population: Population, names: list[str], template: str
    ) -> None:
        assert population.resolve(template.format(names[0])) == 10_700
        assert population.resolve(template.format(names[1])) == 10_700

    def test_percent_encoded_url_resolves(self, population: Population, names: list[str]) -> None:
        encoded = quote(f"https://www.linkedin.com/in/{names[0]}/", safe="")
        assert population.resolve(encoded) == 10_700

    def test_wrong_slug_with_a_valid_suffix_does_not_resolve(
        self, population: Population, names: list[str]
    ) -> None:
        suffix = base36(10_700)
        assert names[0].endswith(suffix)
        assert population.resolve(f"somebody-else-{suffix}") is None
        assert population.resolve(f"https://www.linkedin.com/in/somebody-else-{suffix}/") is None

    @pytest.mark.parametrize(
        "key",
        ["", "john-doe", "!!!", "10001", "https://example.com/in/anna-smith-7ps/", "in/x/y/z"],
    )
    def test_unknown_keys_do_not_resolve(self, population: Population, key: str) -> None:
        assert population.resolve(key) is None


class TestChanges:
    def test_mutate_gives_a_new_current_job(self, population: Population) -> None:
        before = existing(population, 10_700)
        assert population.mutate(10_700) == 1
        after = existing(population, 10_700)

        assert digest(after) != digest(before)
        assert after["last_updated"] > before["last_updated"]
        assert after["shorthand_names"] == before["shorthand_names"]
        assert len(after["experience"]) == len(before["experience"]) + 1
        new_role, previous = after["experience"][0], after["experience"][1]
        assert new_role["date_to"] is None
        assert previous["company_name"] == before["experience"][0]["company_name"]
        assert previous["date_to"] is not None
        assert new_role["company_id"] != previous["company_id"]
        assert (after["job_title"], after["company_id"]) == (new_role["title"], new_role["company_id"])
        assert after["is_working"] == 1

    def test_each_version_differs_and_is_reproducible(self, population: Population) -> None:
        population.mutate(10_700)
        first = digest(population.profile(10_700))
        population.mutate(10_700)
        second = digest(population.profile(10_700))
        replay = Population(seed=42, size=1_000)
        replay.mutate(10_700)
        assert first != second
        assert digest(replay.profile(10_700)) == first

    def test_remove_and_restore(self, population: Population) -> None:
        names = existing(population, 10_700)["shorthand_names"]
        assert population.remove(10_700)
        assert population.profile(10_700) is None
        assert population.resolve("10700") is None
        assert population.resolve(names[0]) is None
        assert 10_700 not in set(population.iter_ids())
        assert population.restore(10_700)
        assert population.resolve(names[0]) == 10_700

    def test_changes_to_unknown_ids_are_refused(self, population: Population) -> None:
        assert population.mutate(10_001) is None
        assert not population.remove(10_001)
        assert not population.restore(10_001)


def test_every_change_moves_the_generation_on() -> None:
    population = Population(seed=7, size=20)
    seen = [population.generation]
    for change in (
        lambda: population.mutate(10_000),
        lambda: population.remove(10_007),
        lambda: population.restore(10_007),
        population.clear_changes,
    ):
        change()
        assert population.generation > seen[-1]
        seen.append(population.generation)
    assert population.generation == seen[-1]  # reading changes nothing
    # A rebuilt population never reuses a generation: cached search results cannot leak into it.
    assert Population(seed=7, size=20).generation not in seen


def test_a_snapshot_keeps_the_population_as_it_was() -> None:
    population = Population(seed=7, size=20)
    population.remove(10_014)
    snapshot = population.snapshot()
    before = [digest(document) for document in snapshot.profiles()]
    assert before == [digest(population.profile(i)) for i in population.iter_ids()]
    assert len(before) == 19

    population.mutate(10_000)
    population.remove(10_007)
    population.restore(10_014)

    assert [digest(document) for document in snapshot.profiles()] == before
    assert snapshot.generation < population.generation
    assert len(list(population.snapshot().profiles())) == 19
