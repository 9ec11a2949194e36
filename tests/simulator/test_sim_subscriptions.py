"""Webhook subscription management (spec §9.1, §9.2, §9.5) over a real socket."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sim_support import API_KEY, MakeSim, Sim
from webhook_support import EXPERIENCE_IDS, PROFILE_ALL, SUBS, api, subscribe

HOOK = "https://hooks.example.com/coresignal"
MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")
DAY = re.compile(r"^\d{4}-\d\d-\d\d$")
OTHER_KEY = "other-key-11111111111111111111111"
CREATE_PATHS = [
    f"{SUBS}/experience_changes/ids",
    f"{SUBS}/experience_changes/employee_clean/ids",
    f"{SUBS}/employee_clean/ids",
]


@pytest.fixture
async def roomy(make_sim: MakeSim) -> Sim:
    """A simulator whose subscription rate limit does not get in the way of the test."""
    return await make_sim(subscriptions_per_minute=1000, api_keys=[API_KEY, OTHER_KEY])


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


class TestCreate:
    @pytest.mark.parametrize("path", CREATE_PATHS)
    async def test_every_path_family_creates_91_day_subscriptions(self, roomy: Sim, path: str) -> None:
        reply = await api(roomy, "POST", path, {"webhook_url": HOOK, "ids": [10_000, 10_007]})
        assert reply.status == 200, reply.text
        body = reply.json()
        assert set(body) == {"id", "status", "created_at", "expiring_at"}
        assert uuid.UUID(body["id"]).version == 4
        assert body["status"] == "active"
        assert MICRO.match(body["created_at"]) and MICRO.match(body["expiring_at"])
        assert parse(body["expiring_at"]) - parse(body["created_at"]) == timedelta(days=91)

    async def test_es_dsl_and_all_selections(self, roomy: Sim) -> None:
        query = {"query": {"term": {"location_country": "Germany"}}}
        es_id = await subscribe(
            roomy, f"{SUBS}/experience_changes/es_dsl", {"webhook_url": HOOK, "es_dsl_query": query}
        )
        all_id = await subscribe(roomy, PROFILE_ALL, {"webhook_url": HOOK, "fields": ["experience"]})
        es_detail = (await api(roomy, "GET", f"{SUBS}/{es_id}")).json()
        all_detail = (await api(roomy, "GET", f"{SUBS}/{all_id}")).json()
        assert (es_detail["type"], es_detail["selection"], es_detail["es_dsl_query"]) == (
            "experience_changes",
            "es_dsl",
            query,
        )
        assert (all_detail["type"], all_detail["selection"], all_detail["fields"]) == (
            "employee_changes",
            "all",
            ["experience"],
        )
        assert es_detail["webhook_url"] == HOOK and es_detail["last_webhook_sent_at"] is None

    @pytest.mark.parametrize(
        ("path", "body", "status"),
        [
            (EXPERIENCE_IDS, {"ids": [10_000]}, 422),
            (EXPERIENCE_IDS, {"webhook_url": "not a url", "ids": [10_000]}, 422),
            (EXPERIENCE_IDS, {"webhook_url": "ftp://example.com/x", "ids": [10_000]}, 422),
            (EXPERIENCE_IDS, {"webhook_url": HOOK}, 400),
            (EXPERIENCE_IDS, {"webhook_url": HOOK, "ids": []}, 400),
            (EXPERIENCE_IDS, {"webhook_url": HOOK, "ids": ["10000"]}, 400),
            (EXPERIENCE_IDS, {"webhook_url": HOOK, "ids": [True]}, 400),
            (f"{SUBS}/experience_changes/es_dsl", {"webhook_url": HOOK}, 400),
            (
                f"{SUBS}/experience_changes/es_dsl",
                {"webhook_url": HOOK, "es_dsl_query": {"query": {"range": {"last_updated": {"gte": "x"}}}}},
                422,
            ),
            (
                f"{SUBS}/experience_changes/es_dsl",
                {"webhook_url": HOOK, "es_dsl_query": {"query": {"no_such_clause": {}}}},
                400,
            ),
            (PROFILE_ALL, {"webhook_url": HOOK, "fields": "experience"}, 400),
        ],
    )
    async def test_bad_requests(self, roomy: Sim, path: str, body: dict[str, Any], status: int) -> None:
        reply = await api(roomy, "POST", path, body)
        assert reply.status == status, reply.text
        assert isinstance(reply.json()["detail"], str)
        assert (await api(roomy, "GET", SUBS)).json() == []

    async def test_a_body_that_is_not_a_json_object_is_422(self, roomy: Sim) -> None:
        headers = {"apikey": API_KEY, "Content-Type": "application/json"}
        for data in ("{", "[1]", ""):
            reply = await roomy.request("POST", EXPERIENCE_IDS, headers=headers, data=data)
            assert reply.status == 422

    async def test_too_many_ids_and_too_many_subscriptions(self, make_sim: MakeSim) -> None:
        sim = await make_sim(subscription_max_ids=2, subscriptions_max_per_key=1)
        too_many = await api(sim, "POST", EXPERIENCE_IDS, {"webhook_url": HOOK, "ids": [1, 2, 3]})
        assert too_many.status == 400
        await subscribe(sim, EXPERIENCE_IDS, {"webhook_url": HOOK, "ids": [1, 2]})
        assert (await api(sim, "POST", PROFILE_ALL, {"webhook_url": HOOK})).status == 400

    async def test_no_key_is_401(self, roomy: Sim) -> None:
        reply = await roomy.request("POST", PROFILE_ALL, json_body={"webhook_url": HOOK})
        assert reply.status == 401


class TestManage:
    async def test_list_shows_own_active_subscriptions_with_dates(self, roomy: Sim) -> None:
        mine = await subscribe(roomy, PROFILE_ALL, {"webhook_url": HOOK})
        await api(roomy, "POST", PROFILE_ALL, {"webhook_url": HOOK}, api_key=OTHER_KEY)
        listed = (await api(roomy, "GET", f"{SUBS}?expired=false&page=1")).json()
        assert [item["id"] for item in listed] == [mine]
        assert listed[0]["status"] == "active"
        assert DAY.match(listed[0]["created_at"]) and DAY.match(listed[0]["expiring_at"])
        assert (await api(roomy, "GET", f"{SUBS}?page=2")).json() == []

    async def test_others_subscriptions_are_404(self, roomy: Sim) -> None:
        theirs = await subscribe(roomy, PROFILE_ALL, {"webhook_url": HOOK})
        for method, suffix in (("GET", ""), ("POST", "/renew"), ("DELETE", "")):
            reply = await api(roomy, method, f"{SUBS}/{theirs}{suffix}", api_key=OTHER_KEY)
            assert reply.status == 404
        assert (await api(roomy, "GET", f"{SUBS}/{uuid.uuid4()}")).status == 404

    async def test_delete_then_gone(self, roomy: Sim) -> None:
        sub = await subscribe(roomy, PROFILE_ALL, {"webhook_url": HOOK})
        reply = await api(roomy, "DELETE", f"{SUBS}/{sub}")
        assert (reply.status, reply.json()) == (200, {"id": sub, "status": "deleted"})
        assert (await api(roomy, "GET", f"{SUBS}/{sub}")).status == 404
        assert (await api(roomy, "DELETE", f"{SUBS}/{sub}")).status == 404

    @pytest.mark.parametrize("query", ["expired=maybe", "page=0", "page=x"])
    async def test_bad_list_parameters_are_400(self, roomy: Sim, query: str) -> None:
        assert (await api(roomy, "GET", f"{SUBS}?{query}")).status == 400


class TestLifecycle:
    async def test_expiry_after_91_days_on_the_world_clock(self, roomy: Sim) -> None:
        sub = await subscribe(roomy, PROFILE_ALL, {"webhook_url": HOOK})
        await roomy.admin("POST", "/advance", {"days": 90})
        assert (await api(roomy, "GET", f"{SUBS}/{sub}")).json()["status"] == "active"
        await roomy.admin("POST", "/advance", {"days": 1})
        assert (await api(roomy, "GET", f"{SUBS}/{sub}")).json()["status"] == "expired"
        assert (await api(roomy, "GET", SUBS)).json() == []
        expired = (await api(roomy, "GET", f"{SUBS}?expired=true")).json()
        assert [(item["id"], item["status"]) for item in expired] == [(sub, "expired")]
        renew = await api(roomy, "POST", f"{SUBS}/{sub}/renew")
        assert renew.status == 400

    async def test_renew_adds_91_days_up_to_one_year(self, roomy: Sim) -> None:
        created = (await api(roomy, "POST", PROFILE_ALL, {"webhook_url": HOOK})).json()
        start = parse(created["created_at"])
        for n in (2, 3, 4):
            reply = await api(roomy, "POST", f"{SUBS}/{created['id']}/renew")
            assert reply.status == 200, reply.text
            body = reply.json()
            assert set(body) == {"id", "status", "created_at", "expiring_at"}
            assert MICRO.match(body["expiring_at"])
            assert parse(body["expiring_at"]) - start == timedelta(days=91 * n)
        past_a_year = await api(roomy, "POST", f"{SUBS}/{created['id']}/renew")
        assert past_a_year.status == 400
        detail = (await api(roomy, "GET", f"{SUBS}/{created['id']}")).json()
        assert parse(detail["expiring_at"]) - start == timedelta(days=364)

    async def test_renew_while_initialising_is_409(self, make_sim: MakeSim) -> None:
        sim = await make_sim(subscription_init_s=3600)
        sub = await subscribe(sim, PROFILE_ALL, {"webhook_url": HOOK})
        assert (await api(sim, "POST", f"{SUBS}/{sub}/renew")).status == 409
        await sim.admin("POST", "/advance", {"days": 1})
        assert (await api(sim, "POST", f"{SUBS}/{sub}/renew")).status == 200


class TestRateLimits:
    async def test_nine_requests_a_minute_then_429(self, sim: Sim) -> None:
        statuses = [(await api(sim, "GET", SUBS)).status for _ in range(9)]
        assert statuses == [200] * 9
        refused = await api(sim, "POST", PROFILE_ALL, {"webhook_url": HOOK})
        assert refused.status == 429
        assert (await api(sim, "GET", SUBS)).json()["detail"] == "Too many requests"
        # Search and collect keep their own budgets.
        assert (await sim.collect(10_000)).status == 200

    async def test_simulate_is_one_a_second(self, make_sim: MakeSim) -> None:
        sim = await make_sim(simulate_delay_s=3600)  # nothing is sent while the test runs
        first = await api(sim, "POST", f"{SUBS}/simulate", {"webhook_url": HOOK})
        second = await api(sim, "POST", f"{SUBS}/simulate", {"webhook_url": HOOK})
        assert (first.status, second.status) == (200, 429)
        assert isinstance(first.json()["detail"], str)

    async def test_simulate_needs_a_valid_url(self, sim: Sim) -> None:
        assert (await api(sim, "POST", f"{SUBS}/simulate", {"webhook_url": "nope"})).status == 422
