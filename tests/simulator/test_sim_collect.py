"""GET /cdapi/v2/employee_clean/collect/{key} over HTTP."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from sim_support import API_KEY, COLLECT_PATH, MakeSim, Sim, document

API_HEADERS = (
    "x-credits-remaining",
    "x-ratelimit-limit-second",
    "x-ratelimit-remaining-second",
    "x-correlation-id",
)


async def test_collect_by_id_returns_the_profile(sim: Sim) -> None:
    reply = await sim.collect(10_000)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == sim.state.population.profile(10_000)


async def test_every_authenticated_response_has_the_api_headers(sim: Sim) -> None:
    for key in (10_000, 10_001):
        reply = await sim.collect(key)
        assert all(name in reply.headers for name in API_HEADERS), reply.headers
        assert int(reply.headers["x-credits-remaining"]) > 0
        assert reply.headers["x-ratelimit-limit-second"] == "54"


async def test_correlation_ids_are_unique(sim: Sim) -> None:
    first, second = await sim.collect(10_000), await sim.collect(10_000)
    assert first.headers["x-correlation-id"] != second.headers["x-correlation-id"]


async def test_unknown_id_is_404(sim: Sim) -> None:
    reply = await sim.collect(10_001)
    assert (reply.status, reply.json()) == (404, {"detail": "Not found"})


async def test_both_shorthand_names_resolve(sim: Sim) -> None:
    names = document(sim, 10_007)["shorthand_names"]
    for name in names:
        reply = await sim.collect(name)
        assert (reply.status, reply.json()["id"]) == (200, 10_007)


async def test_percent_encoded_profile_url_is_a_key(sim: Sim) -> None:
    name = document(sim, 10_007)["shorthand_names"][0]
    # Sim.collect encodes the whole key, so the URL's slashes travel as %2F.
    reply = await sim.collect(f"https://www.linkedin.com/in/{name}/")
    assert (reply.status, reply.json()["id"]) == (200, 10_007)


async def test_profile_url_with_raw_slashes_is_a_key_too(sim: Sim) -> None:
    name = document(sim, 10_007)["shorthand_names"][0]
    path = COLLECT_PATH + quote(f"www.linkedin.com/in/{name}", safe="/")
    reply = await sim.request("GET", path, headers={"apikey": API_KEY})
    assert (reply.status, reply.json()["id"]) == (200, 10_007)


async def test_slug_with_a_stolen_suffix_is_404(sim: Sim) -> None:
    reply = await sim.collect("nobody-here-7ps")  # 7ps is base36 of 10000
    assert reply.status == 404


@pytest.mark.parametrize("api_key", [None, "wrong-key-000000000000000000000000", ""])
async def test_missing_or_unknown_key_is_401_and_not_counted_per_key(sim: Sim, api_key: str | None) -> None:
    reply = await sim.collect(10_000, api_key=api_key)
    assert (reply.status, reply.json()) == (401, {"detail": "Invalid authentication credentials"})
    assert "x-credits-remaining" not in reply.headers
    stats = await sim.stats()
    assert stats["keys"] == {}
    assert stats["classes"]["collect"]["accepted"] == 0
    assert stats["status_counts"] == {"401": 1}


async def test_any_configured_key_is_accepted(make_sim: MakeSim) -> None:
    sim = await make_sim(api_keys=["a" * 32, "b" * 32])
    assert (await sim.collect(10_000, api_key="b" * 32)).status == 200
    assert (await sim.collect(10_000, api_key=API_KEY)).status == 401


async def test_unknown_path_is_json_404(sim: Sim) -> None:
    for path in ("/cdapi/v2/nothing", "/v2/employee_clean/collect/10000", "/"):
        reply = await sim.request("GET", path, headers={"apikey": API_KEY})
        assert (reply.status, reply.json()) == (404, {"detail": "Not found"})


async def test_wrong_method_is_405(sim: Sim) -> None:
    reply = await sim.request("POST", COLLECT_PATH + "10000", headers={"apikey": API_KEY})
    assert reply.status == 405


async def test_deleted_profiles_are_still_returned(sim: Sim) -> None:
    population = sim.state.population
    deleted = next(i for i in population.iter_ids() if document(sim, i)["is_deleted"])
    reply = await sim.collect(deleted)
    assert (reply.status, reply.json()["is_deleted"]) == (200, 1)
