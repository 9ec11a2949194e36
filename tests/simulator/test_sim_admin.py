"""The /_sim control endpoints: stats, live config, reset and profile changes."""

from __future__ import annotations

import pytest
from sim_support import MakeSim, Sim


async def test_health(sim: Sim) -> None:
    reply = await sim.admin("GET", "/health")
    assert (reply.status, reply.json()) == (200, {"status": "ok"})


NO_TRAFFIC = {
    "accepted": 0,
    "rejected_429": 0,
    "max_in_any_second": 0,
    "accepted_rps": None,
    "first_accepted_s": None,
    "last_accepted_s": None,
}


async def test_stats_of_a_fresh_simulator(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=7)
    assert await sim.stats() == {
        "classes": {
            "collect": {**NO_TRAFFIC, "limit_rps": 54},
            "search": {**NO_TRAFFIC, "limit_rps": 18},
            "bulk": {**NO_TRAFFIC, "limit_rps": 27},
        },
        "keys": {},
        "status_counts": {},
        "requests_total": 0,
        "credits_remaining": 7,
        "credits_charged": 0,
        "bulk": {
            "posts_by_fingerprint": {},
            "created_by_fingerprint": {},
            "downloads_by_file": {},
            "completed_by_file": {},
            "requests": {},
        },
        "webhooks": {
            "rounds": 0,
            "posts": 0,
            "notices": 0,
            "retries": 0,
            "failed_posts": 0,
            "simulated": 0,
            "answers": {},
        },
        "world": {"changes": 0, "pending": 0},
    }


async def test_admin_calls_are_not_api_traffic(sim: Sim) -> None:
    await sim.admin("GET", "/health")
    await sim.admin("GET", "/nope")
    assert (await sim.stats())["requests_total"] == 0


class TestPatchConfig:
    async def test_patch_applies_live_and_hides_api_keys(self, sim: Sim) -> None:
        reply = await sim.admin("PATCH", "/config", {"error_rate_5xx": 1.0, "credits": 5})
        assert reply.status == 200
        config = reply.json()
        assert (config["error_rate_5xx"], config["credits"]) == (1.0, 5)
        assert "api_keys" not in config
        assert (await sim.collect(10_000)).status == 503
        assert (await sim.stats())["credits_remaining"] == 5

    async def test_patched_credits_set_the_balance(self, make_sim: MakeSim) -> None:
        sim = await make_sim(credits=2)
        await sim.collect(10_000)
        await sim.admin("PATCH", "/config", {"credits": 2})
        assert (await sim.stats())["credits_remaining"] == 2

    @pytest.mark.parametrize(
        "patch",
        [
            {"no_such_field": 1},
            {"credits": "lots"},
            {"credits": "5"},
            {"collect_rps": True},
            {"error_rate_5xx": 2},
            {"collect_rps": 0},
            {"url_field_naming": "marketing"},
        ],
    )
    async def test_invalid_patches_are_400_and_change_nothing(
        self, sim: Sim, patch: dict[str, object]
    ) -> None:
        before = (await sim.admin("GET", "/config")).json()
        reply = await sim.admin("PATCH", "/config", patch)
        assert reply.status == 400
        assert isinstance(reply.json()["detail"], list)
        assert (await sim.admin("GET", "/config")).json() == before

    @pytest.mark.parametrize("body", [[1, 2], "credits", None])
    async def test_a_body_that_is_not_an_object_is_400(self, sim: Sim, body: object) -> None:
        reply = await sim.admin("PATCH", "/config", body)
        assert (reply.status, reply.json()) == (400, {"detail": "Body must be a JSON object"})

    async def test_naming_switch_rebuilds_the_population(self, sim: Sim) -> None:
        assert (await sim.admin("PATCH", "/config", {"url_field_naming": "docs"})).status == 200
        document = (await sim.collect(10_000)).json()
        assert "websites_professional_network" in document
        assert "company_professional_network_url" in document["experience"][0]

    async def test_rate_limit_can_be_changed_live(self, sim: Sim) -> None:
        sim.state.clock = lambda: 1.0
        await sim.admin("PATCH", "/config", {"collect_rps": 1})
        assert [(await sim.collect(10_000)).status for _ in range(2)] == [200, 429]


class TestProfiles:
    async def test_mutate_changes_what_collect_returns(self, sim: Sim) -> None:
        before = (await sim.collect(10_000)).json()
        reply = await sim.admin("POST", "/profiles/10000/mutate")
        assert (reply.status, reply.json()) == (200, {"id": 10_000, "version": 1})
        after = (await sim.collect(10_000)).json()
        assert after["last_updated"] > before["last_updated"]
        assert after["experience"][1]["date_to"] is not None
        assert (await sim.admin("GET", "/profiles/10000")).json() == after

    async def test_remove_then_restore(self, sim: Sim) -> None:
        reply = await sim.admin("POST", "/profiles/10000/remove")
        assert (reply.status, reply.json()) == (200, {"id": 10_000, "removed": True})
        assert (await sim.collect(10_000)).status == 404
        assert (await sim.admin("GET", "/profiles/10000")).status == 404
        reply = await sim.admin("POST", "/profiles/10000/restore")
        assert (reply.status, reply.json()) == (200, {"id": 10_000, "removed": False})
        assert (await sim.collect(10_000)).status == 200

    @pytest.mark.parametrize(
        ("path", "status"),
        [
            ("/profiles/10001/mutate", 404),
            ("/profiles/10001/remove", 404),
            ("/profiles/abc/mutate", 400),
            ("/profiles/10000/explode", 404),
        ],
    )
    async def test_bad_targets(self, sim: Sim, path: str, status: int) -> None:
        assert (await sim.admin("POST", path)).status == status


async def test_reset_clears_stats_windows_changes_and_restores_credits(make_sim: MakeSim) -> None:
    sim = await make_sim(credits=3, collect_rps=1)
    sim.state.clock = lambda: 1.0
    original = (await sim.collect(10_000)).json()
    assert (await sim.collect(10_000)).status == 429
    await sim.admin("POST", "/profiles/10000/mutate")
    await sim.admin("POST", "/profiles/10007/remove")

    reply = await sim.admin("POST", "/reset")
    assert (reply.status, reply.json()) == (200, {"status": "reset"})
    stats = await sim.stats()
    assert (stats["requests_total"], stats["status_counts"], stats["keys"]) == (0, {}, {})
    assert (stats["credits_remaining"], stats["credits_charged"]) == (3, 0)
    # Same instant as before the reset: only a cleared window lets this through.
    assert (await sim.collect(10_000)).json() == original
    sim.state.clock = lambda: 3.0
    assert (await sim.collect(10_007)).status == 200
