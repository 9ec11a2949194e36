"""The dashboard's page and JSON endpoints: auth, CSRF defence, paging at size, search and history."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from api_support import TOKEN, Api, assert_error
from pymongo import AsyncMongoClient

from api.auth import is_public
from api.dashboard_data import CACHE
from api.ui import UI_PATHS
from config import Settings
from tests.conftest import enqueue_ids
from worker.runtime import Services
from worker.store.mongo import DEAD_LETTERS

RUN = "0" * 32


def concrete(path: str) -> str:
    return path.replace("{id}", RUN if path.startswith("/v1/runs") else "5")


async def test_every_json_route_answers_401_without_a_token(api: Api) -> None:
    """Derived from the router, so a route added later is covered without editing this test."""
    checked = 0
    for route in api.client.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method == "HEAD" or is_public(path):
            continue  # probes, the document, the page's files, the webhook receiver (a capability URL)
        reply = await api.request(route.method, concrete(path), token=None)
        assert_error(reply, 401, "unauthorized")
        checked += 1
    assert checked >= 18  # 8 API routes (+ /metrics) and 10 dashboard JSON routes


@pytest.mark.parametrize("path", sorted(UI_PATHS))
async def test_the_page_and_its_files_need_no_token_and_hold_neither_data_nor_a_token(
    api: Api, path: str
) -> None:
    reply = await api.get(path, token=None)

    assert reply.status == 200
    assert "script-src 'self'" in reply.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"]
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert "Set-Cookie" not in reply.headers
    assert TOKEN not in reply.text


async def test_the_page_has_a_token_form_and_no_inline_script(api: Api) -> None:
    html = (await api.get("/ui", token=None)).text

    assert re.search(r'<input[^>]*name="token"', html)
    assert "<script>" not in html and "onclick=" not in html  # the CSP forbids inline code anyway
    script = (await api.get("/ui/app.js", token=None)).text
    assert "sessionStorage" in script and "localStorage" not in script and "document.cookie" not in script


async def test_a_post_from_another_origin_is_refused_even_with_the_token(
    api: Api, services: Services
) -> None:
    receipt = await enqueue_ids(services, [101, 102])
    path = f"/v1/runs/{receipt.run_id}/pause"

    reply = await api.post(path, headers={"Origin": "https://evil.example"})
    assert_error(reply, 403, "forbidden_origin")
    reply = await api.post(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert_error(reply, 403, "forbidden_origin")
    assert (await api.get(f"/v1/runs/{receipt.run_id}")).body["state"] == "running"

    same = f"http://{api.client.host}:{api.client.port}"
    reply = await api.post(path, headers={"Origin": same, "Sec-Fetch-Site": "same-origin"})
    assert reply.status == 200, reply.text
    assert reply.body["state"] == "paused"


async def test_the_fleet_endpoint_shows_the_limits_queue_and_runs(api: Api, services: Services) -> None:
    await enqueue_ids(services, [101, 102, 103])

    body = (await api.get("/v1/dashboard/fleet")).body

    limits = {c["endpoint_class"]: c["limit_rps"] for c in body["classes"]}
    assert limits == {"collect": 54, "search": 18, "bulk": 27}
    assert body["queue"]["depth"] == 3
    assert body["runs_by_state"]["running"] == 1
    assert body["workers"] == []  # no worker in this test
    assert body["credits"]["exhausted"] is False


async def test_live_runs_gives_the_counters_a_runs_page_shows_from_redis_alone(
    api: Api, services: Services
) -> None:
    run_id = (await enqueue_ids(services, [101, 102, 103])).run_id
    await services.progress.record(run_id, "id:101", "inserted")
    await services.progress.record(run_id, "id:102", "not_found")
    other = "f" * 32  # no counters in Redis: left out, the runs page has what there is to show

    body = (await api.get(f"/v1/dashboard/live-runs?run_ids={run_id},{other},{run_id}")).body

    assert [r["run_id"] for r in body["runs"]] == [run_id]
    live = body["runs"][0]
    listed = next(r for r in (await api.get("/v1/runs")).body["runs"] if r["run_id"] == run_id)
    assert {k: listed[k] for k in live} == live  # the same figures as the runs page, field by field
    assert (live["processed"], live["done"], live["inserted"], live["not_found"]) == (2, 1, 1, 1)


@pytest.mark.parametrize(
    "query",
    ["", "run_ids=", "run_ids=nothex", f"run_ids={RUN},", f"run_ids={','.join([RUN] * 51)}", "other=1"],
)
async def test_bad_live_runs_queries_are_a_400(api: Api, query: str) -> None:
    assert_error(await api.get(f"/v1/dashboard/live-runs?{query}"), 400, "invalid_parameter")


# The Mongo-wire server's inserts slow down with the collection's size (README, Tests): 600 letters
# are 12 pages of 50 here; bench/dashboard.py measures the page costs at 10,000 on the same code.
LETTERS = 600


async def _insert_letters(settings: Settings, count: int) -> None:
    """Letters straight into the collection: the test is about reading them back in pages."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    docs = [
        {
            "_id": f"{'a' * 32}:id:{n}",
            "run_id": "a" * 32,
            "item_key": f"id:{n}",
            "reason": "upstream 400: bad key" if n % 10 else "worker died while running it",
            "error_type": "PermanentError",
            "status": 400,
            "attempts": 1,
            "at": start + timedelta(seconds=n),
        }
        for n in range(count)
    ]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        await client[settings.mongodb_database][DEAD_LETTERS].insert_many(docs)
    finally:
        await client.close()


@pytest.mark.slow
async def test_dead_letters_come_in_pages_newest_first_with_their_reasons(
    api: Api, settings: Settings
) -> None:
    await _insert_letters(settings, LETTERS)

    first = (await api.get("/v1/dashboard/dead-letters?limit=50")).body
    assert first["total"] == LETTERS
    assert len(first["letters"]) == 50
    assert first["letters"][0]["item_key"] == f"id:{LETTERS - 1}"  # newest first
    assert {r["reason"]: r["count"] for r in first["reasons"]} == {
        "upstream 400: bad key": LETTERS * 9 // 10,
        "worker died while running it": LETTERS // 10,
    }
    seen, page, pages = [x["item_key"] for x in first["letters"]], first, 1
    while page["next_cursor"] is not None and pages <= LETTERS // 50:
        page = (await api.get(f"/v1/dashboard/dead-letters?limit=50&cursor={page['next_cursor']}")).body
        seen += [x["item_key"] for x in page["letters"]]
        pages += 1
    assert pages == LETTERS // 50 and page["next_cursor"] is None
    assert seen == [f"id:{n}" for n in range(LETTERS - 1, -1, -1)]  # each once, in order

    assert len((await api.get("/v1/dashboard/dead-letters")).body["letters"]) == 25  # the default page
    reason = "worker died while running it"
    only = await api.get(f"/v1/dashboard/dead-letters?reason={reason.replace(' ', '%20')}&limit=200")
    assert only.body["total"] == LETTERS // 10
    assert {x["reason"] for x in only.body["letters"]} == {reason}


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=201", "limit=x", "cursor=%25%25", "run_id=nothex", "other=1"]
)
async def test_bad_dead_letter_queries_are_a_400(api: Api, query: str) -> None:
    assert_error(await api.get(f"/v1/dashboard/dead-letters?{query}"), 400, "invalid_parameter")


async def test_search_finds_a_run_and_a_mirrored_employee_by_id_and_by_name(
    api: Api, services: Services
) -> None:
    receipt = await enqueue_ids(services, [101])
    now = datetime.now(UTC)
    profile = {"id": 424242, "full_name": "Ada Lovelace", "shorthand_names": ["ada-lovelace"]}
    await services.store.employees.upsert(424242, profile, run_id=receipt.run_id, fetched_at=now)

    by_run = (await api.get(f"/v1/dashboard/search?q={receipt.run_id}")).body["matches"]
    assert by_run == [{"kind": "run", "id": receipt.run_id, "label": "ids run"}]
    expected = [{"kind": "employee", "id": 424242, "label": "Ada Lovelace"}]
    assert (await api.get("/v1/dashboard/search?q=424242")).body["matches"] == expected
    assert (await api.get("/v1/dashboard/search?q=ada-lovelace")).body["matches"] == expected
    url = "https://www.linkedin.com/in/ada-lovelace/"
    assert (await api.get("/v1/dashboard/search", headers={}, token=TOKEN)).status == 400
    assert (await api.get(f"/v1/dashboard/search?q={url}")).body["matches"] == expected
    assert (await api.get("/v1/dashboard/search?q=nobody-here")).body["matches"] == []
    assert (await api.get(f"/v1/dashboard/search?q={'f' * 32}")).body["matches"] == []


async def test_a_profile_history_lists_every_collect_and_its_changes(api: Api, services: Services) -> None:
    run = (await enqueue_ids(services, [101])).run_id
    t0 = datetime.now(UTC)
    base = {"id": 77, "full_name": "Grace Hopper", "headline": "admiral", "shorthand_names": ["grace"]}
    sink = services.store.employees
    for step, (profile, outcome) in enumerate(
        [(base, "inserted"), (base, "unchanged"), ({**base, "headline": "rear admiral"}, "changed")]
    ):
        at = t0 + timedelta(seconds=step)
        assert (await sink.upsert(77, profile, run_id=run, fetched_at=at, by="name")).value == outcome

    body = (await api.get("/v1/employees/77/history")).body

    assert body["mirrored"] is True and body["name"] == "Grace Hopper"
    assert body["collects_total"] == 3
    assert [c["outcome"] for c in body["collects"]] == ["changed", "unchanged", "inserted"]
    assert {c["run_id"] for c in body["collects"]} == {run}
    assert {c["by"] for c in body["collects"]} == {"name"}
    assert [c["fields"] for c in body["changes"]] == [["headline"]]
    assert_error(await api.get("/v1/employees/78/history"), 404, "employee_not_found")


async def test_freshness_is_hidden_without_profiles_and_counts_them_by_age(
    api: Api, services: Services
) -> None:
    assert (await api.get("/v1/dashboard/freshness")).body["available"] is False
    now = datetime.now(UTC)
    for n, age in enumerate([timedelta(minutes=5), timedelta(days=2), timedelta(days=40)]):
        await services.store.employees.upsert(n + 1, {"id": n + 1}, run_id=RUN, fetched_at=now - age)
    api.client.app[CACHE].clear()  # the figures are cached for 30 s

    body = (await api.get("/v1/dashboard/freshness")).body

    assert body["available"] is True and body["total"] == 3
    assert [b["count"] for b in body["buckets"]] == [1, 0, 1, 0, 1]  # ≤1 h, ≤1 d, ≤7 d, ≤30 d, older
    assert body["over_max_age"] == 1 and body["over_max_age_share"] == pytest.approx(1 / 3, abs=0.001)


async def test_requeue_by_reason_puts_letters_back_to_work(api: Api, services: Services) -> None:
    receipt = await enqueue_ids(services, [101, 102])
    await services.store.dead_letters.put(
        run_id=receipt.run_id, item_key="id:101", reason="boom", error_type="X", attempts=1,
        now=datetime.now(UTC),
    )  # fmt: skip

    assert_error(await api.post("/v1/dashboard/dead-letters/requeue", {"reason": 5}), 400, "invalid_body")
    reply = await api.post("/v1/dashboard/dead-letters/requeue", {"reason": "boom"})

    assert reply.status == 200 and reply.body == {"requeued": 1}
    assert (await api.get("/v1/dashboard/dead-letters")).body["total"] == 0
