"""The dashboard's bulk-request and subscription panels, a data request's page, and search by a data
request id: pages newest first, the figures each row shows, and what a page must not carry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from api_support import Api, assert_error

from tests.conftest import enqueue_ids
from worker.run_model import DataRequest
from worker.runtime import Services
from worker.store.ledger import row_id_of

T0 = datetime(2026, 11, 1, tzinfo=UTC)
ROWS = 25


async def _ledger_rows(services: Services, run_id: str, count: int) -> list[str]:
    """`count` planned rows of one run, one second apart (written as jobs/bulk writes them)."""
    row_ids = []
    for seq in range(count):
        row = DataRequest(
            row_id=row_id_of(run_id, seq), run_id=run_id, seq=seq, kind="id_file",
            fingerprint=f"fp-{seq}", chunk_seqs=[seq], created_at=T0 + timedelta(seconds=seq),
        )  # fmt: skip
        await services.store.ledger.plan(row)
        row_ids.append(row.row_id)
    return row_ids


async def _ready_with_files(services: Services, row_id: str, request_id: str, ready_at: datetime) -> None:
    """submitting → submitted → ready with two files, the first ingested (1,000 records)."""
    ledger = services.store.ledger
    assert await ledger.begin_submit(row_id, ready_at)
    assert await ledger.submitted(row_id, request_id, ready_at)
    assert await ledger.ready(row_id, ["json/part-00000-a.json.gz", "json/part-00001-b.json.gz"], ready_at)
    assert await ledger.checkpoint(row_id, 0, 1000, 1000, 52_000)
    assert await ledger.file_done(row_id, 0, 1000, 0)


async def test_data_requests_come_in_pages_newest_first_with_their_states(
    api: Api, services: Services
) -> None:
    run_id = (await enqueue_ids(services, [101])).run_id
    row_ids = await _ledger_rows(services, run_id, ROWS)
    ready_at = datetime.now(UTC) - timedelta(hours=1)
    await _ready_with_files(services, row_ids[-1], "3f1c0d6e-2222-4bbb-8ccc-123456789abc", ready_at)

    first = (await api.get("/v1/dashboard/data-requests")).body

    assert first["total"] == ROWS
    assert first["by_state"]["planned"] == ROWS - 1 and first["by_state"]["ready"] == 1
    assert [r["id"] for r in first["data_requests"]] == row_ids[::-1][:20]  # the default page, newest first
    newest = first["data_requests"][0]
    assert newest["state"] == "ready" and newest["run_id"] == run_id
    assert newest["request_id"] == "3f1c0d6e-2222-4bbb-8ccc-123456789abc"
    assert (newest["files_done"], newest["files_total"], newest["records_ingested"]) == (1, 2, 1000)
    expires = datetime.fromisoformat(newest["files_expire_at"])
    assert abs(expires - (ready_at + timedelta(days=30))) < timedelta(milliseconds=1)  # spec §8.3
    assert newest["files_expired"] is False
    assert first["data_requests"][1]["files_expire_at"] is None  # planned: no files listed yet
    assert first["data_requests"][1]["age_s"] > 30 * 86_400  # created 2026-11-01

    second = (await api.get(f"/v1/dashboard/data-requests?cursor={first['next_cursor']}")).body
    assert [r["id"] for r in second["data_requests"]] == row_ids[::-1][20:]
    assert second["next_cursor"] is None

    other_run = (await enqueue_ids(services, [102])).run_id
    only = (await api.get(f"/v1/dashboard/data-requests?run_id={other_run}")).body
    assert only["data_requests"] == [] and only["next_cursor"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=201", "cursor=zz", "run_id=nothex", "state=ready"])
async def test_bad_data_request_queries_are_a_400(api: Api, query: str) -> None:
    assert_error(await api.get(f"/v1/dashboard/data-requests?{query}"), 400, "invalid_parameter")


async def test_a_data_request_page_shows_its_run_and_each_file(api: Api, services: Services) -> None:
    run_id = (await enqueue_ids(services, [101])).run_id
    (row_id,) = await _ledger_rows(services, run_id, 1)
    await _ready_with_files(services, row_id, "req-42", datetime.now(UTC))

    body = (await api.get(f"/v1/dashboard/data-requests/{row_id}")).body

    assert body["id"] == row_id and body["state"] == "ready" and body["request_id"] == "req-42"
    assert body["run_id"] == run_id and body["run_state"] == "running"
    assert body["fingerprint"] == "fp-0"
    assert [(f["name"], f["done"], f["records_ingested"]) for f in body["files"]] == [
        ("json/part-00000-a.json.gz", True, 1000),
        ("json/part-00001-b.json.gz", False, 0),
    ]
    assert_error(
        await api.get(f"/v1/dashboard/data-requests/{'e' * 32}:00000"), 404, "data_request_not_found"
    )
    assert_error(await api.get("/v1/dashboard/data-requests/req-42"), 400, "invalid_parameter")


async def test_search_finds_a_data_request_by_the_upstream_id_and_by_its_ledger_row(
    api: Api, services: Services
) -> None:
    run_id = (await enqueue_ids(services, [101])).run_id
    (row_id,) = await _ledger_rows(services, run_id, 1)
    request_id = "3f1c0d6e-2222-4bbb-8ccc-123456789abc"
    await _ready_with_files(services, row_id, request_id, datetime.now(UTC))
    expected = [{"kind": "data_request", "id": row_id, "label": f"data request {request_id}"}]

    assert (await api.get(f"/v1/dashboard/search?q={request_id}")).body["matches"] == expected
    assert (await api.get(f"/v1/dashboard/search?q={row_id}")).body["matches"] == expected
    assert (await api.get("/v1/dashboard/search?q=3f1c0d6e")).body["matches"] == []  # exact ids only


def _subscription(n: int, now: datetime, **fields: object) -> dict[str, object]:
    return {
        "_id": f"sub-{n:03d}", "type": "experience", "selection": "ids", "ids": list(range(1, 5001)),
        "query_json": None, "collect_unknown": True, "token_hash": f"{n:064x}", "status": "active",
        "created_at": now - timedelta(days=n), "expiring_at": now + timedelta(days=91 - n),
        "lineage_started_at": now - timedelta(days=n), "renewed_at": None, "last_delivery_at": None,
        "silence_after_s": 9 * 86_400, **fields,
    }  # fmt: skip


async def test_subscriptions_show_state_selection_age_expiry_and_last_delivery(
    api: Api, services: Services
) -> None:
    assert (await api.get("/v1/dashboard/subscriptions")).body == {
        "total": 0, "subscriptions": [], "next_cursor": None,
    }  # fmt: skip
    now = datetime.now(UTC)
    store = services.store.webhooks
    await store.save_subscription(_subscription(1, now, last_delivery_at=now - timedelta(hours=2)))
    await store.save_subscription(_subscription(30, now, selection="all", ids=None))  # 30 days, no delivery
    await store.save_subscription(_subscription(100, now, expiring_at=now - timedelta(days=9)))

    page = await api.get("/v1/dashboard/subscriptions?limit=2")
    body = page.body

    assert body["total"] == 3
    fresh, quiet = body["subscriptions"]  # newest first
    assert (fresh["id"], fresh["status"], fresh["selection"], fresh["silent"]) == (
        "sub-001",
        "active",
        "ids",
        False,
    )
    assert fresh["last_delivery_age_s"] == pytest.approx(7200, abs=60)
    assert fresh["age_s"] == pytest.approx(86_400, abs=60)
    assert fresh["expires_in_s"] == pytest.approx(90 * 86_400, abs=60)
    assert (quiet["selection"], quiet["last_delivery_at"], quiet["silent"]) == ("all", None, True)
    assert '"ids":' not in page.text and "token_hash" not in page.text  # 5,000 ids and the hash stay home
    rest = (await api.get(f"/v1/dashboard/subscriptions?limit=2&cursor={body['next_cursor']}")).body
    assert [(s["id"], s["status"]) for s in rest["subscriptions"]] == [("sub-100", "expired")]
    assert rest["next_cursor"] is None
