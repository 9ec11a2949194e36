"""The changing world: the world clock, day rounds, /_sim/advance, /_sim/mutate and /_sim/world."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from sim_support import TEST_POPULATION, MakeSim, Sim, document
from webhook_support import world_changes

from simulator.population import Population

# Every generated profile's last_updated is at most 2025-10-01 (simulator.profiles.REFERENCE_DATE),
# and world changes are dated on the world clock, which starts at the wall clock (2026 or later).
AFTER_GENERATED = "2025-10-02"


async def advance(sim: Sim, days: float, **extra: Any) -> dict[str, Any]:
    reply = await sim.admin("POST", "/advance", {"days": days, **extra})
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def mutate(sim: Sim, ids: list[int], kind: str, **extra: Any) -> dict[str, Any]:
    reply = await sim.admin("POST", "/mutate", {"ids": ids, "kind": kind, **extra})
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def changed_since(sim: Sim, day: str) -> list[int]:
    query = {"query": {"range": {"last_updated": {"gte": day}}}, "sort": ["id"]}
    reply = await sim.search(query)
    assert reply.status == 200
    ids: list[int] = reply.json()
    return ids


class TestAdvance:
    async def test_a_week_changes_its_share_and_every_endpoint_sees_it(self, sim: Sim) -> None:
        before = {i: document(sim, i)["last_updated"] for i in sim.state.population.iter_ids()}
        body = await advance(sim, 7)
        changes = body["changes"]
        assert body["days_done"] == 7
        assert len(changes) == int(TEST_POPULATION * 0.05)  # 25: the default 5 % a week
        changed = {change["id"] for change in changes}
        for change in changes:
            collected = (await sim.collect(change["id"])).json()
            assert collected["last_updated"] > before[change["id"]]
        last = {change["id"]: change["last_updated"] for change in changes}
        for employee_id, stamp in last.items():
            assert (await sim.collect(employee_id)).json()["last_updated"] == stamp
        assert set(await changed_since(sim, AFTER_GENERATED)) == changed
        assert len(await world_changes(sim)) == len(changes)

    async def test_changes_are_spread_over_the_days_and_dated_by_them(self, sim: Sim) -> None:
        changes = (await advance(sim, 7))["changes"]
        days = sorted({change["at"][:10] for change in changes})
        assert len(days) == 7
        for change in changes:
            assert change["last_updated"][:10] >= change["at"][:10]
            assert set(change) == {
                "id", "kind", "at", "wall_ts", "last_updated", "changed_fields", "source"
            }  # fmt: skip
            assert change["source"] == "world" and change["changed_fields"]

    async def test_the_same_seed_and_advances_give_the_same_changes(self, make_sim: MakeSim) -> None:
        first, second = await make_sim(seed=5), await make_sim(seed=5)
        runs = []
        for sim in (first, second):
            await advance(sim, 3)
            await advance(sim, 11)
            runs.append([(c["id"], c["kind"], c["changed_fields"]) for c in await world_changes(sim)])
        assert runs[0] == runs[1]
        assert len(runs[0]) == int(TEST_POPULATION * 0.05 * 2)  # two whole weeks

    async def test_concurrent_advances_do_not_interleave_their_rounds(self, sim: Sim) -> None:
        first, second = await asyncio.gather(advance(sim, 7), advance(sim, 7))
        assert sorted((first["days_done"], second["days_done"])) == [7, 14]
        changes = await world_changes(sim)
        assert len(changes) == 2 * int(TEST_POPULATION * 0.05)
        assert [c["at"] for c in changes] == sorted(c["at"] for c in changes)

    async def test_share_and_kind_weights_are_settings(self, make_sim: MakeSim) -> None:
        sim = await make_sim(world_change_share_per_week=0.2, world_kind_weights={"other": 1.0})
        changes = (await advance(sim, 7))["changes"]
        assert len(changes) == 100
        assert {change["kind"] for change in changes} == {"other"}
        assert all("experience" not in change["changed_fields"] for change in changes)

    async def test_no_share_no_change(self, make_sim: MakeSim) -> None:
        sim = await make_sim(world_change_share_per_week=0)
        assert (await advance(sim, 30))["changes"] == []

    async def test_fractional_days_run_rounds_only_when_a_day_is_complete(self, sim: Sim) -> None:
        assert (await advance(sim, 0.5))["days_done"] == 0
        assert (await advance(sim, 0.5))["days_done"] == 1

    @pytest.mark.parametrize(
        "body",
        [
            {"days": -1},
            {"days": "7"},
            {"days": True},
            {"days": None},
            {"days": 3661},
            {"seconds": -1},
            {"hours": 1},
            {"days": 1, "hours": 1},
            {"wait": True},
            {},
            [1],
        ],
    )
    async def test_bad_bodies_are_400_and_the_clock_stays(self, sim: Sim, body: object) -> None:
        reply = await sim.admin("POST", "/advance", body)
        assert reply.status == 400
        assert sim.state.world_clock.offset == timedelta(0)

    async def test_days_and_seconds_add_up(self, sim: Sim) -> None:
        body = await advance(sim, 1, seconds=3600)
        assert body["clock_offset_s"] == 90_000
        assert body["days_done"] == 1
        assert (await sim.admin("POST", "/advance", {"seconds": 0})).json()["clock_offset_s"] == 90_000

    async def test_search_date_math_runs_on_the_world_clock(self, sim: Sim) -> None:
        await advance(sim, 20)
        recent = [c["id"] for c in await world_changes(sim) if c["at"] >= (await _now(sim, -5)).isoformat()]
        query = {"query": {"range": {"last_updated": {"gte": "now-5d"}}}}
        assert set((await sim.search(query)).json()) == set(recent)
        assert recent  # 5 days of 500 * 5 % / 7 changes a day

    async def test_an_advance_moves_date_math_even_when_nothing_changed(self, make_sim: MakeSim) -> None:
        sim = await make_sim(world_change_share_per_week=0)
        await mutate(sim, [10_000], "other")
        query = {"query": {"range": {"last_updated": {"gte": "now-5d"}}}}
        assert (await sim.search(query)).json() == [10_000]
        await advance(sim, 10)
        assert (await sim.search(query)).json() == []


async def _now(sim: Sim, plus_days: float) -> datetime:
    return sim.state.world_clock.now() + timedelta(days=plus_days)


class TestMutate:
    async def test_each_kind_shows_in_the_profile(self, sim: Sim) -> None:
        working = [i for i in sim.state.population.iter_ids() if document(sim, i)["is_working"]][:4]
        started, ended, changed, other = working
        old = {i: document(sim, i) for i in working}
        kinds = ("role_started", "role_ended", "role_changed", "other")
        for employee_id, kind in zip(working, kinds, strict=True):
            (record,) = (await mutate(sim, [employee_id], kind))["changes"]
            assert (record["id"], record["kind"], record["source"]) == (employee_id, kind, "admin")
        new = {i: (await sim.collect(i)).json() for i in working}
        assert len(new[started]["experience"]) == len(old[started]["experience"]) + 1
        assert new[started]["experience"][0]["date_to"] is None
        assert new[ended]["is_working"] == 0 and new[ended]["experience"][0]["date_to"] is not None
        assert len(new[changed]["experience"]) == len(old[changed]["experience"])
        assert new[changed]["experience"][0] != old[changed]["experience"][0]
        assert new[other]["experience"] == old[other]["experience"]
        assert all(new[i]["last_updated"] > old[i]["last_updated"] for i in working)

    async def test_role_ended_without_an_open_role_starts_one(self, sim: Sim) -> None:
        idle = next(i for i in sim.state.population.iter_ids() if not document(sim, i)["is_working"])
        (record,) = (await mutate(sim, [idle], "role_ended"))["changes"]
        assert record["kind"] == "role_started"
        assert (await sim.collect(idle)).json()["is_working"] == 1

    async def test_changed_fields_name_what_differs(self, sim: Sim) -> None:
        before = dict(document(sim, 10_000))
        (record,) = (await mutate(sim, [10_000], "role_changed"))["changes"]
        after = document(sim, 10_000)
        differing = {name for name in after if name != "last_updated" and after[name] != before[name]}
        assert set(record["changed_fields"]) == differing
        assert "experience" in differing

    async def test_unknown_ids_are_404_and_nothing_changes(self, sim: Sim) -> None:
        reply = await sim.admin("POST", "/mutate", {"ids": [10_000, 10_001], "kind": "other"})
        assert reply.status == 404
        assert reply.json()["unknown_ids"] == [10_001]
        assert sim.state.population.version(10_000) == 0
        assert await world_changes(sim) == []

    @pytest.mark.parametrize(
        "body",
        [
            {"ids": [], "kind": "other"},
            {"ids": "10000", "kind": "other"},
            {"ids": [True], "kind": "other"},
            {"ids": [10_000], "kind": "promoted"},
            {"ids": [10_000], "kind": "other", "deliver": "yes"},
            ["not", "an", "object"],
        ],
    )
    async def test_bad_bodies_are_400(self, sim: Sim, body: object) -> None:
        assert (await sim.admin("POST", "/mutate", body)).status == 400

    async def test_mutate_ids_are_seen_by_a_date_range_search(self, sim: Sim) -> None:
        ids = [Population.id_at(i) for i in (3, 50, 400)]
        await mutate(sim, ids, "other")
        assert await changed_since(sim, AFTER_GENERATED) == sorted(ids)


class TestWorldReport:
    async def test_since_filters_and_limit_caps(self, sim: Sim) -> None:
        await advance(sim, 7)
        middle = (await _now(sim, -3)).isoformat()
        reply = await sim.admin("GET", f"/world?since={middle.replace('+', '%2B')}&limit=3")
        body = reply.json()
        assert body["changes_total"] == 25 and body["days_done"] == 7
        assert len(body["changes"]) == 3
        assert all(change["at"] >= middle for change in body["changes"])
        assert body["pending"] == 0  # the weekly batch took them (with no subscription to tell)

    async def test_bad_parameters_are_400(self, sim: Sim) -> None:
        assert (await sim.admin("GET", "/world?since=yesterday")).status == 400
        assert (await sim.admin("GET", "/world?limit=-1")).status == 400

    async def test_reset_starts_a_fresh_world(self, sim: Sim) -> None:
        await advance(sim, 14)
        await sim.admin("POST", "/reset")
        body = (await sim.admin("GET", "/world")).json()
        assert (body["changes_total"], body["days_done"], body["offset_s"]) == (0, 0, 0)
        assert document(sim, 10_000)["last_updated"] < AFTER_GENERATED
        assert await changed_since(sim, AFTER_GENERATED) == []
