"""/v1/syncs: create (refused definitions save nothing), list, show with freshness, control, delete."""

from __future__ import annotations

from api_support import Api, assert_error


async def test_a_sync_is_created_read_controlled_and_deleted(api: Api) -> None:
    body = {"name": "team", "employee_ids": [101, "102"], "max_age": "20s", "every": 2, "credits_per_day": 50}
    created = await api.post("/v1/syncs", body)
    assert created.status == 201, created.text
    assert created.headers["Location"] == "/v1/syncs/team"
    assert (created.body["members"], created.body["max_age_s"], created.body["every_s"]) == (2, 20, 2)

    shown = (await api.get("/v1/syncs/team")).body
    assert shown["freshness"]["members"] == 2 and shown["freshness"]["over_max_age"] == 2
    assert shown["freshness"]["credits_per_day"] == 50
    assert [s["name"] for s in (await api.get("/v1/syncs")).body["syncs"]] == ["team"]
    assert (await api.post("/v1/syncs/team/pause")).body["state"] == "paused"
    assert (await api.post("/v1/syncs/team/resume")).body["state"] == "active"
    assert (await api.post("/v1/syncs/team/run-now")).status == 200
    assert_error(await api.post("/v1/syncs", body), 409, "sync_exists")
    deleted = await api.request("DELETE", "/v1/syncs/team")
    assert deleted.status == 200 and deleted.body == {"deleted": "team"}
    assert_error(await api.get("/v1/syncs/team"), 404, "sync_not_found")


async def test_refused_definitions_say_why_and_save_nothing(api: Api) -> None:
    cases = [
        ({"name": "a", "employee_ids": [1], "max_age": "3w"}, 422, "unknown duration unit"),
        ({"name": "a", "employee_ids": [1], "max_age": "1m", "every": "1h"}, 422, "shorter than --every"),
        ({"name": "a", "employee_ids": []}, 422, "list is empty"),
        ({"name": "a", "query": {"size": 1}}, 422, "query"),
        ({"name": "a", "employee_ids": [1], "query": {"query": {"match_all": {}}}}, 400, "exactly one"),
        ({"name": "a", "employee_ids": [1], "colour": "red"}, 400, "unknown field"),
    ]
    for body, status, words in cases:
        reply = await api.post("/v1/syncs", body)
        assert reply.status == status, (body, reply.text)
        assert words in reply.body["error"]["message"], reply.text
    assert (await api.get("/v1/syncs")).body == {"syncs": []}
