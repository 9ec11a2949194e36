"""Webhook deliveries (spec §9.3, §9.3b, §9.4) to a real receiver on a socket."""

from __future__ import annotations

from typing import Any

from sim_support import API_KEY, MakeSim, Sim, document
from webhook_support import (
    EXPERIENCE_IDS,
    PROFILE_ALL,
    SUBS,
    api,
    receiver,
    subscribe,
    world_changes,
)

from simulator.population import Population

EXPERIENCE_KINDS = {"role_started", "role_ended"}


async def fresh(make_sim: MakeSim, **overrides: Any) -> Sim:
    return await make_sim(subscriptions_per_minute=1000, **overrides)


async def mutate(sim: Sim, ids: list[int], kind: str, **extra: Any) -> dict[str, Any]:
    reply = await sim.admin("POST", "/mutate", {"ids": ids, "kind": kind, **extra})
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


async def test_a_week_delivers_exactly_the_matching_changes(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim, world_change_share_per_week=0.2)
    selected = [Population.id_at(i) for i in range(200)]
    async with receiver() as experience, receiver() as profile:
        await subscribe(sim, EXPERIENCE_IDS, {"webhook_url": experience.url, "ids": selected})
        await subscribe(sim, PROFILE_ALL, {"webhook_url": profile.url})
        reply = await sim.admin("POST", "/advance", {"days": 7})
        (round_,) = reply.json()["rounds"]
        changes = await world_changes(sim)
        expected_experience = {
            c["id"] for c in changes if c["id"] in set(selected) and c["kind"] in EXPERIENCE_KINDS
        }
        expected_fields: dict[int, set[str]] = {}
        for change in changes:
            expected_fields.setdefault(change["id"], set()).update(change["changed_fields"])

        assert len(experience.bodies) == 1 and len(profile.bodies) == 1  # one weekly batch each
        assert sorted(experience.member_ids()) == sorted(expected_experience)
        assert all(set(item) == {"member_id", "status"} for item in experience.items())
        assert {item["status"] for item in experience.items()} == {"changed"}
        assert {item["member_id"]: set(item["changed_fields"]) for item in profile.items()} == expected_fields
        assert len(profile.items()) == len(expected_fields)  # one notice per member and batch
        assert round_["notices"] == len(expected_experience) + len(expected_fields)
        assert 0 < len(expected_experience) < len(expected_fields)
    webhooks = (await sim.stats())["webhooks"]
    assert (webhooks["posts"], webhooks["answers"], webhooks["failed_posts"]) == (2, {"202": 2}, 0)
    assert webhooks["notices"] == round_["notices"]


async def test_nothing_is_sent_before_the_week_is_over(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    async with receiver() as rec:
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        assert (await sim.admin("POST", "/advance", {"days": 6})).json()["rounds"] == []
        assert rec.bodies == []
        assert (await sim.admin("GET", "/world")).json()["pending"] > 0
        await sim.admin("POST", "/advance", {"days": 1})
        assert len(rec.member_ids()) == len({c["id"] for c in await world_changes(sim)})


async def test_experience_subscriptions_ignore_promotions_and_other_fields(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    ids = [10_000, 10_007, 10_014, 10_021]
    async with receiver() as experience, receiver() as profile:
        await subscribe(sim, EXPERIENCE_IDS, {"webhook_url": experience.url, "ids": ids})
        await subscribe(sim, PROFILE_ALL, {"webhook_url": profile.url})
        await mutate(sim, ids[:2], "role_changed")
        await mutate(sim, ids[2:3], "other")
        assert experience.bodies == []
        assert sorted(profile.member_ids()) == ids[:3]
        await mutate(sim, ids[3:], "role_started")
        assert experience.member_ids() == [ids[3]]


async def test_promotions_notify_when_the_setting_says_so(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim, webhook_on_role_changed=True)
    async with receiver() as rec:
        await subscribe(sim, EXPERIENCE_IDS, {"webhook_url": rec.url, "ids": [10_000]})
        await mutate(sim, [10_000], "role_changed")
        assert rec.member_ids() == [10_000]


async def test_profile_subscription_by_field(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim, world_kind_weights={"other": 1.0})
    async with receiver() as rec:
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url, "fields": ["skills"]})
        await sim.admin("POST", "/advance", {"days": 14})
        with_skills = {c["id"] for c in await world_changes(sim) if "skills" in c["changed_fields"]}
        assert with_skills
        assert set(rec.member_ids()) == with_skills
        assert all("skills" in item["changed_fields"] for item in rec.items())


async def test_es_dsl_selection_matches_before_or_after_the_change(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    leaver = next(i for i in sim.state.population.iter_ids() if document(sim, i)["is_working"])
    company = document(sim, leaver)["company_id"]
    query = {"query": {"term": {"company_id": company}}}
    async with receiver() as rec:
        path = f"{SUBS}/experience_changes/es_dsl"
        await subscribe(sim, path, {"webhook_url": rec.url, "es_dsl_query": query})
        outsider = next(
            i
            for i in sim.state.population.iter_ids()
            if document(sim, i)["is_working"] and document(sim, i)["company_id"] != company
        )
        await mutate(sim, [leaver, outsider], "role_ended")
        assert document(sim, leaver)["company_id"] is None  # no longer matches: matched before
        assert rec.member_ids() == [leaver]


async def test_batch_size_splits_posts(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim, webhook_batch_size=2)
    ids = [Population.id_at(i) for i in range(5)]
    async with receiver() as rec:
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        await mutate(sim, ids, "other")
        assert [len(body) for body in rec.bodies] == [2, 2, 1]
        assert rec.member_ids() == ids


async def test_no_retry_by_default_and_retries_when_set(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim, webhook_retry_delay_s=0)
    async with receiver() as rec:
        rec.status = 500
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        await mutate(sim, [10_000], "other")
        assert len(rec.bodies) == 1
        await sim.admin("PATCH", "/config", {"webhook_retries": 2})
        await mutate(sim, [10_007], "other")
        assert len(rec.bodies) == 4
    webhooks = (await sim.stats())["webhooks"]
    assert (webhooks["posts"], webhooks["retries"], webhooks["failed_posts"]) == (4, 2, 2)
    assert (webhooks["answers"], webhooks["notices"]) == ({"500": 4}, 0)


async def test_an_unreachable_receiver_is_counted_not_fatal(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    async with receiver() as rec:
        gone = rec.url
    await subscribe(sim, PROFILE_ALL, {"webhook_url": gone})
    body = await mutate(sim, [10_000], "other")
    assert body["rounds"][0]["failed_posts"] == 1
    assert (await sim.stats())["webhooks"]["answers"] == {"error": 1}


async def test_expired_deleted_and_later_subscriptions_hear_nothing(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    async with receiver() as rec:
        expired = await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        await sim.admin("POST", "/advance", {"days": 91})
        rec.bodies.clear()  # what it heard while alive
        deleted = await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        await api(sim, "DELETE", f"{SUBS}/{deleted}")
        await mutate(sim, [10_000], "other", deliver=False)
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})  # after the change
        await sim.admin("POST", "/deliver", {})
        assert rec.bodies == []
        assert (await api(sim, "GET", f"{SUBS}/{expired}")).json()["status"] == "expired"


async def test_last_webhook_date_is_recorded(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    async with receiver() as rec:
        sub = await subscribe(sim, EXPERIENCE_IDS, {"webhook_url": rec.url, "ids": [10_000]})
        body = await mutate(sim, [10_000], "role_started")
        detail = (await api(sim, "GET", f"{SUBS}/{sub}")).json()
        assert detail["last_webhook_sent_at"] is not None
        assert detail["last_webhook_sent_at"][:19] == body["now"][:19]


async def test_background_delivery_arrives(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim)
    async with receiver() as rec:
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        body = await mutate(sim, [10_000], "other", wait=False)
        assert body["rounds"] == []
        await rec.wait_for_bodies(1)
        assert rec.member_ids() == [10_000]


async def test_simulate_sends_one_example_notice(make_sim: MakeSim) -> None:
    sim = await make_sim(simulate_delay_s=0)
    async with receiver() as rec:
        reply = await api(sim, "POST", f"{SUBS}/simulate", {"webhook_url": rec.url})
        assert reply.status == 200
        await rec.wait_for_bodies(1)
        ((item,),) = rec.bodies
        assert item["status"] == "changed"
        assert sim.state.population.exists(item["member_id"])
    assert (await sim.stats())["webhooks"]["simulated"] == 1


async def test_the_status_word_is_a_setting(make_sim: MakeSim) -> None:
    sim = await fresh(make_sim, webhook_status="changed_experience")
    async with receiver() as rec:
        await subscribe(sim, EXPERIENCE_IDS, {"webhook_url": rec.url, "ids": [10_000]})
        await mutate(sim, [10_000], "role_started")
        assert rec.items() == [{"member_id": 10_000, "status": "changed_experience"}]


async def test_subscriptions_belong_to_their_key_only_for_management(make_sim: MakeSim) -> None:
    # Deliveries go to every matching subscription, whoever's key made it.
    other = "second-key-2222222222222222222222"
    sim = await fresh(make_sim, api_keys=[API_KEY, other])
    async with receiver() as rec:
        await subscribe(sim, PROFILE_ALL, {"webhook_url": rec.url})
        reply = await api(sim, "POST", PROFILE_ALL, {"webhook_url": rec.url}, api_key=other)
        assert reply.status == 200
        await mutate(sim, [10_000], "other")
        assert rec.member_ids() == [10_000, 10_000]
