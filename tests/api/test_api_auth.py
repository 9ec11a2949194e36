"""Bearer-token authentication: who gets in, who does not, and what the API refuses to start without."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import pytest
import structlog
from api_support import ROTATED_TOKEN, TOKEN, Api, MakeApi, assert_error

from api.app import ApiConfigError, create_app, serve
from cli.main import EXIT_USAGE, main
from config import Settings
from devstack import processes as svc
from tests.conftest import with_overrides
from worker.runtime import Services

RUN = "0" * 32
PROTECTED = [
    ("GET", "/v1/runs"),
    ("POST", "/v1/runs"),
    ("GET", f"/v1/runs/{RUN}"),
    ("POST", f"/v1/runs/{RUN}/pause"),
    ("POST", f"/v1/runs/{RUN}/resume"),
    ("POST", f"/v1/runs/{RUN}/cancel"),
    ("GET", "/v1/employees/1"),
    ("GET", "/metrics"),
    ("GET", "/no/such/route"),  # unknown routes too: an anonymous caller learns nothing about routes
]
WRONG_AUTHORIZATIONS = [
    "",
    "Bearer",
    "Bearer ",
    f"Basic {TOKEN}",
    f"Token {TOKEN}",
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
    f"Bearer {TOKEN.upper()}",
    f"Bearer {TOKEN},{ROTATED_TOKEN}",
    "Bearer wrong-token",
    "Bearer ünïcödé",
    TOKEN,
]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.slow
async def test_every_protected_route_refuses_a_request_without_a_token(
    api: Api, method: str, path: str
) -> None:
    reply = await api.request(method, path, token=None)

    error = assert_error(reply, 401, "unauthorized")
    assert error == {"code": "unauthorized", "message": "missing or invalid bearer token", "details": None}
    assert reply.headers["WWW-Authenticate"] == "Bearer"


async def test_every_wrong_credential_gets_the_same_401_body(api: Api) -> None:
    anonymous = await api.get("/v1/runs", token=None)
    for authorization in WRONG_AUTHORIZATIONS:
        reply = await api.get("/v1/runs", headers={"Authorization": authorization})
        assert (reply.status, reply.text) == (401, anonymous.text), authorization
        assert reply.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER   {TOKEN} ", f"Bearer {ROTATED_TOKEN}"]
)
async def test_each_configured_token_is_accepted(api: Api, authorization: str) -> None:
    reply = await api.get("/v1/runs", headers={"Authorization": authorization})

    assert reply.status == 200, reply.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json"])
async def test_probes_and_the_openapi_document_need_no_token(api: Api, path: str) -> None:
    assert (await api.get(path, token=None)).status == 200


async def test_metrics_needs_the_token_and_answers_with_it(api: Api) -> None:
    assert_error(await api.get("/metrics", token=None), 401, "unauthorized")

    reply = await api.get("/metrics")

    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert "employee_sync_queue_depth" in reply.text


async def test_the_app_refuses_to_be_built_without_tokens(settings: Settings, services: Services) -> None:
    with pytest.raises(ApiConfigError, match="API_TOKENS"):
        create_app(with_overrides(settings, api_tokens=""), services)
    with pytest.raises(ApiConfigError, match="API_TOKENS"):
        create_app(with_overrides(settings, api_tokens=" , "), services)  # blanks are not tokens


async def test_serve_refuses_to_start_without_tokens_before_opening_anything(settings: Settings) -> None:
    nowhere = with_overrides(
        settings, api_tokens="", mongodb_url="mongodb://127.0.0.1:9", redis_url="redis://127.0.0.1:9/0"
    )
    with pytest.raises(ApiConfigError, match="--insecure-no-auth"):
        await serve(nowhere, "127.0.0.1", 0, insecure=False)


def test_the_cli_exits_with_a_usage_error_without_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("API_TOKENS", raising=False)

    assert main(["api", "--port", "0"]) == EXIT_USAGE
    assert "API_TOKENS is not set" in capsys.readouterr().err


async def test_insecure_mode_serves_without_tokens(settings: Settings, make_api: MakeApi) -> None:
    api = await make_api(with_overrides(settings, api_tokens=""), insecure=True)

    assert (await api.get("/v1/runs", token=None)).status == 200


async def test_the_insecure_flag_does_not_switch_configured_tokens_off(make_api: MakeApi) -> None:
    api = await make_api(insecure=True)

    assert_error(await api.get("/v1/runs", token=None), 401, "unauthorized")
    assert (await api.get("/v1/runs")).status == 200


async def test_serve_listens_until_stopped_and_never_logs_a_token(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    port = svc.free_port()
    with structlog.testing.capture_logs() as events:
        server = asyncio.create_task(serve(settings, "127.0.0.1", port, insecure=False))
        try:
            await _wait_for_port(port)
            async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
                async with session.get("/healthz") as resp:
                    assert resp.status == 200
                async with session.get("/v1/runs", headers={"Authorization": "Bearer guessed-token"}) as resp:
                    assert resp.status == 401
                async with session.get("/v1/runs", headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                    assert resp.status == 200
        finally:
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
    assert any(e["event"] == "api.listening" for e in events)
    logged = repr(events) + caplog.text
    for secret in (TOKEN, ROTATED_TOKEN, "guessed-token", settings.coresignal_api_key.get_secret_value()):
        assert secret not in logged
    assert not svc.port_answers("127.0.0.1", port)


async def _wait_for_port(port: int) -> None:
    for _ in range(100):
        if svc.port_answers("127.0.0.1", port):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")
