"""The API client's error edge: Retry-After parsing, which 404s tombstone, what error text may say.

Odd answers the simulator never gives come from a tiny aiohttp server on a real socket (upstream_stub).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import web

from simulator.app import RunningSimulator
from simulator.population import Population
from tests.conftest import TEST_API_KEY, MakeSimulator
from tests.upstream_stub import stub_upstream
from worker.client import (
    RETRY_AFTER_CAP_S,
    UPSTREAM_TEXT_MAX_CHARS,
    CoresignalClient,
    parse_retry_after,
    upstream_text,
)
from worker.errors import (
    EmployeeSyncError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    UpstreamRouteError,
    UpstreamUnavailableError,
)

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def _http_date(when: datetime, zone: str = "GMT") -> str:
    """An IMF-fixdate with the zone spelled as given (GMT, +0000 or the "unknown" -0000)."""
    return when.strftime("%a, %d %b %Y %H:%M:%S ") + zone


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), (" 7 ", 7.0), ("1.5", 1.5), ("-0", 0.0)],
)
def test_delta_seconds_are_read_as_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize("zone", ["GMT", "+0000", "-0000", "UTC"])
def test_an_http_date_is_seconds_from_now_whatever_its_zone_spelling(zone: str) -> None:
    # `-0000` parses to a naive datetime: before the fix, subtracting it raised TypeError.
    assert parse_retry_after(_http_date(NOW + timedelta(seconds=30), zone), now=NOW) == 30.0


def test_the_reviews_minus_zero_date_is_capped_not_a_type_error() -> None:
    assert parse_retry_after("Wed, 21 Oct 2035 07:28:00 -0000", now=NOW) == RETRY_AFTER_CAP_S


def test_a_date_in_the_past_means_now() -> None:
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), now=NOW) == 0.0


def test_a_naive_now_is_taken_as_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after(_http_date(NOW + timedelta(seconds=5)), now=naive) == 5.0


@pytest.mark.parametrize(
    "header", ["inf", "-inf", "Infinity", "nan", "NaN", "1e400", "-5", "-0.5", "soon", "Wed, 99 Foo", ""]
)
def test_unusable_values_are_refused_not_raised(header: str) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_absent_header_is_none() -> None:
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("header", ["100000", "99999999999999999999", _http_date(NOW + timedelta(days=3650))])
def test_far_future_values_are_clamped_to_the_cap(header: str) -> None:
    assert parse_retry_after(header, now=NOW) == RETRY_AFTER_CAP_S == 120.0


def test_the_cap_can_be_overridden() -> None:
    assert parse_retry_after("600", now=NOW, cap_s=30.0) == 30.0
    assert parse_retry_after("20", now=NOW, cap_s=30.0) == 20.0


def _far_date() -> str:
    return _http_date(datetime.now(UTC) + timedelta(days=3650), "-0000")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("inf", None), ("1e400", None), ("nan", None), ("-1", None), ("FAR", 120.0)],
)
async def test_a_429_carries_a_usable_retry_after_whatever_the_header(
    header: str, expected: float | None
) -> None:
    sent = _far_date() if header == "FAR" else header

    async def too_many(_: web.Request) -> web.Response:
        return web.json_response({"detail": "Too many requests"}, status=429, headers={"Retry-After": sent})

    async with stub_upstream(too_many) as base_url:
        client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5)
        try:
            with pytest.raises(RateLimitedError) as caught:
                await client.collect("42")
        finally:
            await client.close()
    assert caught.value.retry_after_s == expected


async def test_a_client_cap_applies_to_its_429s() -> None:
    async def too_many(_: web.Request) -> web.Response:
        return web.json_response({"detail": "slow down"}, status=429, headers={"retry-after": "3600"})

    async with stub_upstream(too_many) as base_url:
        client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5, retry_after_cap_s=45)
        try:
            with pytest.raises(RateLimitedError) as caught:
                await client.collect("42")
        finally:
            await client.close()
    assert caught.value.retry_after_s == 45.0


# -- which 404s tombstone (review #15) -----------------------------------------------------------


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=50)


async def _collect(base_url: str, key: str) -> None:
    client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5)
    try:
        await client.collect(key)
    finally:
        await client.close()


async def test_the_apis_own_404_for_a_missing_id_is_not_found(simulator: RunningSimulator) -> None:
    with pytest.raises(NotFoundError, match="HTTP 404: Not found"):
        await _collect(simulator.base_url, "13")  # not in the population


async def test_a_base_url_without_cdapi_is_a_route_404_not_a_missing_employee(
    simulator: RunningSimulator,
) -> None:
    root = f"http://{simulator.host}:{simulator.port}"  # review case N: the simulator root, no /cdapi
    alive = str(Population.id_at(0))
    with pytest.raises(UpstreamRouteError) as caught:
        await _collect(root, alive)
    assert not isinstance(caught.value, PermanentError)  # retried, then dead-lettered: nothing lost
    assert "is CORESIGNAL_BASE_URL right (it must end in /cdapi)?" in str(caught.value)
    assert str(caught.value).startswith(f"collect {alive}: HTTP 404 without the API's not-found answer")


async def test_a_search_against_a_wrong_route_is_not_a_not_found(simulator: RunningSimulator) -> None:
    client = CoresignalClient.open(
        f"http://{simulator.host}:{simulator.port}/v1/cdapi", TEST_API_KEY, timeout_s=5
    )
    try:
        with pytest.raises(UpstreamRouteError, match=r"^search: HTTP 404 without"):
            await client.search({"query": {"match_all": {}}})
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("body", "content_type", "headers"),
    [
        (b"<html><body><h1>404 Not Found</h1>nginx</body></html>", "text/html", {"x-credits-remaining": "9"}),
        (b'{"message": "no Route matched with those values"}', "application/json", {}),
        (b'{"detail": "Not Found"}', "application/json", {}),  # a framework's route 404: no balance
        (b"", "text/plain", {}),
    ],
    ids=["html-page", "gateway-json", "detail-without-credits", "empty"],
)
async def test_any_other_404_is_a_route_error(
    body: bytes, content_type: str, headers: dict[str, str]
) -> None:
    async def not_found(_: web.Request) -> web.Response:
        return web.Response(body=body, status=404, content_type=content_type, headers=headers)

    async with stub_upstream(not_found) as base_url:
        with pytest.raises(UpstreamRouteError, match="nothing is tombstoned"):
            await _collect(base_url, "42")


async def test_the_envelope_with_a_credit_balance_is_the_apis_not_found() -> None:
    async def not_found(_: web.Request) -> web.Response:
        return web.json_response({"detail": "Not found"}, status=404, headers={"X-Credits-Remaining": "77"})

    async with stub_upstream(not_found) as base_url:
        with pytest.raises(NotFoundError):
            await _collect(base_url, "42")


# -- what upstream text may say (review #14) --------------------------------------------------------

OTHER_SECRET = "mongo-pw-7f3a9c"  # e.g. a Settings.secrets() entry handed to the client


def _echoing(status: int, kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def echo(request: web.Request) -> web.Response:
        key = request.headers.get("apikey", "")
        text = f"key {key} refused; see redis://app:{OTHER_SECRET}@cache:6379 and {OTHER_SECRET}"
        if kind == "json":
            return web.json_response({"detail": text}, status=status)
        if kind == "headers":  # a debugging proxy that dumps the whole request back
            return web.json_response({"detail": dict(request.headers)}, status=status)
        return web.Response(text=f"<html><pre>{text}</pre></html>", status=status, content_type="text/html")

    return echo


@pytest.mark.parametrize("status", [401, 403, 404, 422, 429, 500, 503])
@pytest.mark.parametrize("kind", ["json", "html", "headers"])
async def test_an_echoed_key_never_reaches_the_exception_message(status: int, kind: str) -> None:
    async with stub_upstream(_echoing(status, kind)) as base_url:
        client = CoresignalClient.open(base_url, TEST_API_KEY, timeout_s=5, secrets=[OTHER_SECRET])
        try:
            with pytest.raises(EmployeeSyncError) as caught:
                await client.collect("42")
        finally:
            await client.close()
    message = str(caught.value)
    assert f"HTTP {status}" in message
    assert TEST_API_KEY not in message and OTHER_SECRET not in message
    assert "***" in message  # redacted, not dropped: the operator still sees what was said


async def test_long_upstream_text_is_cut_after_redaction() -> None:
    async def long_page(request: web.Request) -> web.Response:
        # The key straddles character 300: cut first, and a prefix of it would survive.
        text = "x" * 290 + request.headers["apikey"] + "y" * 10_000
        return web.Response(text=text, status=500, content_type="text/plain")

    async with stub_upstream(long_page) as base_url:
        with pytest.raises(UpstreamUnavailableError) as caught:
            await _collect(base_url, "42")
    said = str(caught.value).removeprefix("collect 42: HTTP 500: ")
    assert said == "x" * 290 + "***" + "y" * (UPSTREAM_TEXT_MAX_CHARS - 294) + "…"
    assert TEST_API_KEY[:8] not in str(caught.value)


def test_upstream_text_is_one_line() -> None:
    assert upstream_text("line one\n\tline two\r\n", ["two"]) == "line one line ***"


# -- redirects are not followed ----------------------------------------------------------------------


async def test_a_redirect_is_not_followed_so_the_key_never_leaves_for_another_origin() -> None:
    elsewhere: list[str] = []

    async def other_origin(request: web.Request) -> web.Response:
        elsewhere.append(request.headers.get("apikey", ""))
        return web.json_response({"id": 42})

    async with stub_upstream(other_origin) as other_url:

        async def redirect(_: web.Request) -> web.Response:
            raise web.HTTPFound(f"{other_url}/v2/employee_clean/collect/42")

        async with stub_upstream(redirect) as base_url:
            with pytest.raises(
                UpstreamRouteError, match=r"HTTP 302 redirect to http://127\.0\.0\.1:\d+/cdapi/v2/"
            ):
                await _collect(base_url, "42")
    assert elsewhere == []  # aiohttp would have sent the apikey header there (it strips only Authorization)
