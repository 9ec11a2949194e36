"""Happy paths of the run routes and the employee read, on real Redis and the Mongo-wire server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from api_support import Api, assert_error

from worker import keys
from worker.runtime import Services

SEARCH_BODY = {
    "query": {"bool": {"filter": [{"term": {"location_country": "Germany"}}]}},
    "sort": ["id"],
}


async def queued_job_owners(services: Services) -> list[Any]:
    """The run id (first argument) of every job waiting in the queue."""
    job_ids = [j.decode() for j in await services.redis.zrange(keys.JOB_QUEUE, 0, -1)]
    return [None if args is None else args[0] for args in await services.queue.job_args(job_ids)]


async def create(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    reply = await api.post("/v1/runs", body)
    assert reply.status == 202, reply.text
    created: dict[str, Any] = reply.body
    assert reply.headers["Location"] == f"/v1/runs/{created['run_id']}"
    return created


async def test_an_id_run_is_created_with_per_item_rejections_and_read_back(api: Api) -> None:
    body = {"employee_ids": [101, "102", 101, "abc", -5, 2**70, 0, "7\n8", 103.0, " 0042 "]}
    created = await create(api, body)

    assert (created["kind"], created["accepted"], created["duplicates"]) == ("ids", 4, 1)
    rejected = {r["index"]: r for r in created["rejected"]}
    assert sorted(rejected) == [3, 4, 5, 6, 7]
    assert created["rejected_count"] == 5
    assert rejected[3]["value"] == "abc" and "not a positive integer" in rejected[3]["reason"]
    assert "out of range" in rejected[5]["reason"] and "out of range" in rejected[6]["reason"]
    assert "line break" in rejected[7]["reason"]
    assert all(r["reason"] for r in created["rejected"])

    run = (await api.get(f"/v1/runs/{created['run_id']}")).body
    assert (run["run_id"], run["kind"], run["state"]) == (created["run_id"], "ids", "running")
    assert (run["accepted"], run["rejected"], run["duplicates"], run["queued"]) == (4, 5, 1, 4)
    assert run["created_at"] is not None and run["finished_at"] is None


async def test_an_integral_decimal_is_an_integer_as_json_schema_says(api: Api, services: Services) -> None:
    created = await create(api, {"search": SEARCH_BODY, "max_profiles": 954.0})

    assert (await api.get(f"/v1/runs/{created['run_id']}")).body["max_profiles"] == 954
    ids = await create(api, {"employee_ids": [5.0, 1e3]})
    assert (ids["accepted"], ids["rejected"]) == (2, [])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"employee_ids": [0, -1]}, "out of range"),
        ({"employee_ids": ["abc", "", "#7", "1\n2", 2**64]}, "not a positive integer"),
        ({"shorthand_names": ["x", "https://evil.example/in/ada", "  "]}, "not a shorthand name"),
    ],
)
async def test_a_list_with_no_usable_item_is_a_422_and_creates_no_run(
    api: Api, services: Services, body: dict[str, Any], reason: str
) -> None:
    reply = await api.post("/v1/runs", body)

    error = assert_error(reply, 422, "no_valid_items")
    items = next(iter(body.values()))
    assert f"none of the {len(items)} items" in error["message"]
    rejected = error["details"]["rejected"]
    assert [r["index"] for r in rejected] == list(range(len(items)))
    assert error["details"]["rejected_count"] == len(items)
    assert reason in rejected[0]["reason"] and all(r["reason"] for r in rejected)
    assert "Location" not in reply.headers
    assert await services.store.runs.count_all() == 0
    assert await services.queue.depth(keys.JOB_QUEUE) == 0
    assert (await api.get("/v1/runs")).body == {"runs": [], "next_cursor": None}


async def test_a_names_run_accepts_names_and_profile_urls(api: Api) -> None:
    names = ["ada-lovelace", "https://www.linkedin.com/in/grace-hopper/", "linkedin.com/in/alan_turing", "x"]
    created = await create(api, {"shorthand_names": names})

    assert (created["kind"], created["accepted"]) == ("names", 3)
    assert [(r["index"], r["value"]) for r in created["rejected"]] == [(3, "x")]
    run = (await api.get(f"/v1/runs/{created['run_id']}")).body
    assert (run["kind"], run["accepted"], run["rejected"]) == ("names", 3, 1)


async def test_a_search_run_is_created_and_read_back_with_its_query(api: Api, services: Services) -> None:
    created = await create(api, {"search": SEARCH_BODY, "max_profiles": 250})

    assert (created["kind"], created["accepted"], created["rejected"]) == ("search", 0, [])
    run = (await api.get(f"/v1/runs/{created['run_id']}")).body
    assert (run["kind"], run["state"], run["query"], run["max_profiles"]) == (
        "search",
        "running",
        SEARCH_BODY,
        250,
    )
    assert await queued_job_owners(services) == [created["run_id"]]  # page 0 is queued


async def test_pause_resume_and_cancel_move_the_runs_jobs_in_and_out_of_the_queue(
    api: Api, services: Services
) -> None:
    run_id = (await create(api, {"employee_ids": [11, 12, 13, 14, 15]}))["run_id"]
    assert await queued_job_owners(services) == [run_id] * 5

    paused = await api.post(f"/v1/runs/{run_id}/pause")
    assert (paused.status, paused.body["state"]) == (200, "paused")
    assert await queued_job_owners(services) == []
    assert_error(await api.post(f"/v1/runs/{run_id}/pause"), 409, "invalid_state")

    resumed = await api.post(f"/v1/runs/{run_id}/resume")
    assert (resumed.status, resumed.body["state"]) == (200, "running")
    assert await queued_job_owners(services) == [run_id] * 5
    assert_error(await api.post(f"/v1/runs/{run_id}/resume"), 409, "invalid_state")

    cancelled = await api.post(f"/v1/runs/{run_id}/cancel")
    assert (cancelled.status, cancelled.body["state"]) == (200, "cancelled")
    assert cancelled.body["finished_at"] is not None
    assert await services.queue.depth(keys.JOB_QUEUE) == 0
    assert (await api.get(f"/v1/runs/{run_id}")).body["state"] == "cancelled"
    for action in ("pause", "resume", "cancel"):
        error = assert_error(await api.post(f"/v1/runs/{run_id}/{action}"), 409, "invalid_state")
        assert "cancelled" in error["message"]


async def test_cancelling_one_run_leaves_the_other_runs_jobs_queued(api: Api, services: Services) -> None:
    keep = (await create(api, {"employee_ids": [21, 22]}))["run_id"]
    drop = (await create(api, {"employee_ids": [23, 24, 25]}))["run_id"]

    assert (await api.post(f"/v1/runs/{drop}/cancel")).status == 200

    assert await queued_job_owners(services) == [keep, keep]


async def test_a_search_run_can_be_cancelled_and_its_page_job_goes(api: Api, services: Services) -> None:
    run_id = (await create(api, {"search": SEARCH_BODY}))["run_id"]

    assert (await api.post(f"/v1/runs/{run_id}/cancel")).body["state"] == "cancelled"
    assert await queued_job_owners(services) == []


@pytest.mark.parametrize("action", ["pause", "resume", "cancel"])
async def test_controlling_an_unknown_run_is_404(api: Api, action: str) -> None:
    error = assert_error(await api.post(f"/v1/runs/{'0' * 32}/{action}"), 404, "run_not_found")
    assert "0" * 32 in error["message"]


async def test_reading_an_unknown_run_is_404(api: Api) -> None:
    assert_error(await api.get(f"/v1/runs/{'f' * 32}"), 404, "run_not_found")


async def test_listing_filters_by_state_and_pages_with_the_cursor(api: Api) -> None:
    run_ids = [(await create(api, {"employee_ids": [n]}))["run_id"] for n in (31, 32, 33)]
    await api.post(f"/v1/runs/{run_ids[1]}/pause")

    paused = (await api.get("/v1/runs?state=paused")).body
    assert [r["run_id"] for r in paused["runs"]] == [run_ids[1]]
    assert paused["next_cursor"] is None

    first = (await api.get("/v1/runs?limit=2")).body
    assert [r["run_id"] for r in first["runs"]] == run_ids[:0:-1]  # newest first
    assert isinstance(first["next_cursor"], str)
    second = await api.get(f"/v1/runs?limit=2&cursor={first['next_cursor']}")
    assert [r["run_id"] for r in second.body["runs"]] == [run_ids[0]]
    assert second.body["next_cursor"] is None

    everything = (await api.get("/v1/runs")).body
    assert [r["run_id"] for r in everything["runs"]] == run_ids[::-1]
    assert (await api.get("/v1/runs?state=finished")).body == {"runs": [], "next_cursor": None}


async def test_any_well_formed_cursor_is_a_position_in_the_newest_first_order(api: Api) -> None:
    run_ids = [(await create(api, {"employee_ids": [n]}))["run_id"] for n in (41, 42)]
    first = (await api.get("/v1/runs?limit=1")).body
    created_us = int(first["next_cursor"].split("-")[0])

    assert first["next_cursor"] == f"{created_us}-{run_ids[1]}"
    after_everything = f"99999999999999999-{'f' * 32}"
    assert [r["run_id"] for r in (await api.get(f"/v1/runs?cursor={after_everything}")).body["runs"]] == (
        run_ids[::-1]
    )
    before_everything = f"0-{'0' * 32}"
    assert (await api.get(f"/v1/runs?cursor={before_everything}")).body == {"runs": [], "next_cursor": None}
    # A cursor never handed out (run 1's instant, an id below every id) pages on from there.
    older = (await api.get(f"/v1/runs?cursor={created_us}-{'0' * 32}")).body["runs"]
    first_run = (await api.get(f"/v1/runs/{run_ids[0]}")).body
    was_earlier = datetime.fromisoformat(first_run["created_at"]) < datetime.fromtimestamp(
        created_us / 1e6, UTC
    )
    assert older == ([first_run] if was_earlier else [])


async def test_a_mirrored_employee_is_returned_with_its_sync_metadata(api: Api, services: Services) -> None:
    profile = {"id": 4242, "full_name": "Ada Lovelace", "experience": [{"title": "analyst"}]}
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    await services.store.employees.upsert(4242, profile, run_id="r" * 32, fetched_at=now)

    reply = await api.get("/v1/employees/4242")

    assert reply.status == 200, reply.text
    assert reply.body["id"] == 4242
    assert reply.body["profile"] == profile
    sync = reply.body["sync"]
    assert sync["run_id"] == "r" * 32
    assert datetime.fromisoformat(sync["synced_at"]) == now
    assert sync["deleted_at"] is None


async def test_an_employee_not_mirrored_is_404(api: Api) -> None:
    error = assert_error(await api.get("/v1/employees/777"), 404, "employee_not_found")
    assert "777" in error["message"]


async def test_blank_and_hash_items_are_rejected_not_dropped(api: Api) -> None:
    created = await create(api, {"employee_ids": ["", "  ", "#5", 7]})

    assert created["accepted"] == 1
    assert [r["index"] for r in created["rejected"]] == [0, 1, 2]


async def test_every_rejected_item_is_listed(api: Api) -> None:
    created = await create(api, {"shorthand_names": ["ok-name"] + ["x"] * 150})

    assert created["rejected_count"] == 150
    assert [r["index"] for r in created["rejected"]] == list(range(1, 151))
