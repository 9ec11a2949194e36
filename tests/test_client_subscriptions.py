"""worker.client.SubscriptionClient against the simulator on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from simulator.app import RunningSimulator
from simulator.config import DEFAULT_API_KEY
from tests.conftest import MakeSimulator
from worker.client import CoresignalClient, SubscriptionClient, subscription_request
from worker.errors import (
    BadRequestError,
    PermanentError,
    RateLimitedError,
    SubscriptionInitializingError,
    SubscriptionNotFoundError,
    SubscriptionRenewalError,
    TransientError,
)

HOOK = "https://hooks.example.com/coresignal/abc"


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    # The simulator's default key: these tests speak to it with DEFAULT_API_KEY.
    return await make_simulator(population=200, subscriptions_per_minute=1000, api_keys=[DEFAULT_API_KEY])


@pytest.fixture
async def subs(simulator: RunningSimulator) -> AsyncIterator[SubscriptionClient]:
    client = CoresignalClient.open(simulator.base_url, DEFAULT_API_KEY, timeout_s=5)
    yield SubscriptionClient(client)
    await client.close()


async def test_create_each_kind_and_selection(subs: SubscriptionClient, simulator: RunningSimulator) -> None:
    by_ids = await subs.create_subscription("experience", [10_000, 10_007], HOOK)
    by_query = await subs.create_subscription(
        "experience", {"query": {"term": {"department": "Sales"}}}, HOOK
    )
    everyone = await subs.create_subscription("profile", "all", HOOK, fields=["experience", "headline"])
    for info in (by_ids, by_query, everyone):
        assert info.status == "active"
        assert info.created_at is not None and info.expiring_at is not None
        lifetime = datetime.fromisoformat(info.expiring_at) - datetime.fromisoformat(info.created_at)
        assert lifetime == timedelta(days=91)
    stored = {s.id: s for s in simulator.state.subscriptions.subscriptions.values()}
    assert stored[by_ids.id].ids == {10_000, 10_007}
    assert stored[by_query.id].selection == "es_dsl"
    assert (stored[everyone.id].type, stored[everyone.id].fields) == (
        "employee_changes",
        {"experience", "headline"},
    )


async def test_list_get_renew_delete(subs: SubscriptionClient) -> None:
    created = await subs.create_subscription("profile", [10_000], HOOK)
    assert [s.id for s in await subs.list_subscriptions()] == [created.id]
    assert await subs.list_subscriptions(expired=True) == []
    detail = await subs.get_subscription(created.id)
    assert (detail.body["webhook_url"], detail.body["ids_count"]) == (HOOK, 1)
    renewed = await subs.renew_subscription(created.id)
    assert renewed.expiring_at is not None and created.expiring_at is not None
    extension = datetime.fromisoformat(renewed.expiring_at) - datetime.fromisoformat(created.expiring_at)
    assert extension == timedelta(days=91)
    await subs.delete_subscription(created.id)
    assert await subs.list_subscriptions() == []


async def test_statuses_map_onto_the_error_tree(
    subs: SubscriptionClient, simulator: RunningSimulator
) -> None:
    with pytest.raises(SubscriptionNotFoundError) as missing:
        await subs.get_subscription("00000000-0000-4000-8000-000000000000")
    assert isinstance(missing.value, PermanentError) and missing.value.status == 404
    with pytest.raises(SubscriptionNotFoundError):
        await subs.delete_subscription("no-such-id")

    with pytest.raises(BadRequestError) as bad_url:
        await subs.create_subscription("experience", "all", "not a url")
    assert bad_url.value.status == 422
    with pytest.raises(BadRequestError) as date_filter:
        await subs.create_subscription(
            "experience", {"query": {"range": {"last_updated": {"gte": "x"}}}}, HOOK
        )
    assert date_filter.value.status == 422

    created = await subs.create_subscription("experience", "all", HOOK)
    for _ in range(3):
        await subs.renew_subscription(created.id)
    with pytest.raises(SubscriptionRenewalError) as past_a_year:
        await subs.renew_subscription(created.id)
    assert past_a_year.value.status == 400

    simulator.state.config.subscription_init_s = 3600
    young = await subs.create_subscription("experience", "all", HOOK)
    with pytest.raises(SubscriptionInitializingError) as initialising:
        await subs.renew_subscription(young.id)
    assert isinstance(initialising.value, TransientError)


async def test_the_minute_limit_is_a_rate_limited_error(
    subs: SubscriptionClient, simulator: RunningSimulator
) -> None:
    simulator.state.config.subscriptions_per_minute = 2
    await subs.list_subscriptions()
    await subs.list_subscriptions()
    with pytest.raises(RateLimitedError):
        await subs.list_subscriptions()


@pytest.mark.parametrize(
    ("kind", "selection", "fields", "path", "extra"),
    [
        (
            "experience",
            [1, 2],
            None,
            "/v2/subscriptions/experience_changes/employee_clean/ids",
            {"ids": [1, 2]},
        ),
        ("experience", "all", None, "/v2/subscriptions/experience_changes/employee_clean/all", {}),
        (
            "profile",
            {"query": {"match_all": {}}},
            ["skills"],
            "/v2/subscriptions/employee_clean/es_dsl",
            {"es_dsl_query": {"query": {"match_all": {}}}, "fields": ["skills"]},
        ),
    ],
)
def test_subscription_request_shapes(
    kind: Any, selection: Any, fields: Any, path: str, extra: dict[str, Any]
) -> None:
    assert subscription_request(kind, selection, HOOK, fields) == (path, {"webhook_url": HOOK, **extra})


@pytest.mark.parametrize(
    ("kind", "selection", "fields"),
    [("weekly", "all", None), ("experience", "everyone", None), ("experience", "all", ["skills"])],
)
def test_malformed_subscription_requests_are_value_errors(kind: Any, selection: Any, fields: Any) -> None:
    with pytest.raises(ValueError, match=r"."):
        subscription_request(kind, selection, HOOK, fields)
