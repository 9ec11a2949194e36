"""`"via"` on POST /v1/runs: a bulk run is created, read back with its data requests, and refused
for names. Real Redis and the Mongo-wire server (no upstream: the API never calls Coresignal)."""

from __future__ import annotations

from api_support import Api, assert_error

from worker.runtime import Services


async def test_via_bulk_makes_a_bulk_run_with_its_data_requests(api: Api, services: Services) -> None:
    reply = await api.post("/v1/runs", {"employee_ids": [10_000, 10_007, 10_014], "via": "bulk"})
    assert reply.status == 202, reply.text
    run_id = reply.body["run_id"]
    run = (await api.get(f"/v1/runs/{run_id}")).body
    assert (run["kind"], run["accepted"], run["via"], run["data_requests"]) == (
        "bulk",
        3,
        "bulk",
        {"planned": 1},
    )
    assert len(await services.store.ledger.of_run(run_id)) == 1


async def test_via_bulk_is_refused_for_names(api: Api) -> None:
    reply = await api.post("/v1/runs", {"shorthand_names": ["ada-lovelace"], "via": "bulk"})
    assert_error(reply, 400, "invalid_body")
