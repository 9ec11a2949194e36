"""Building and serving the aiohttp application.

`create_app(settings, services)` takes opened services (tests and `serve` open them), so the module
holds no clients of its own. `serve` refuses to start without bearer tokens unless told to run open.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

import structlog
from aiohttp import web

from api import webhook_openapi
from api.auth import TokenChecker, auth_middleware
from api.changes import add_changes_routes
from api.dashboard_data import add_dashboard_routes
from api.errors import error_middleware
from api.openapi import build_openapi
from api.routes import add_routes
from api.state import OPENAPI, SERVICES, SETTINGS
from api.syncs import add_sync_routes
from api.ui import add_ui_routes, origin_middleware
from api.webhooks import add_webhook_routes
from config import Settings
from worker.runtime import Services

log = structlog.get_logger("employee_sync.api")

# In-flight requests get this long to finish after SIGTERM; each is one short MongoDB/Redis exchange.
SHUTDOWN_TIMEOUT_S = 10.0


class ApiConfigError(ValueError):
    """The API was asked to start in a way it refuses (e.g. without any bearer token)."""


def check_auth_config(settings: Settings, *, insecure: bool) -> None:
    if not settings.bearer_tokens() and not insecure:
        raise ApiConfigError(
            "API_TOKENS is not set: refusing to serve the API without authentication "
            "(set API_TOKENS=token1,token2, or pass --insecure-no-auth on a trusted network only)"
        )


def create_app(settings: Settings, services: Services, *, insecure: bool = False) -> web.Application:
    """The application. With API_TOKENS set, auth is enforced whatever `insecure` says."""
    check_auth_config(settings, insecure=insecure)
    checker = TokenChecker(settings.bearer_tokens())
    app = web.Application(
        middlewares=[error_middleware, origin_middleware, auth_middleware(checker)],
        # aiohttp's own cap for request.read(); our reader streams and enforces the same limit.
        client_max_size=settings.api_max_body_bytes,
    )
    app[SETTINGS] = settings
    app[SERVICES] = services
    app[OPENAPI] = webhook_openapi.extend(build_openapi(max_items=settings.api_max_items))
    add_routes(app)
    add_dashboard_routes(app)
    add_ui_routes(app)
    add_webhook_routes(app)
    add_changes_routes(app)
    add_sync_routes(app)
    return app


async def serve(settings: Settings, host: str, port: int, *, insecure: bool) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight requests and close the clients."""
    check_auth_config(settings, insecure=insecure)  # before opening anything
    _log_auth_mode(settings, insecure=insecure, host=host)
    services = await Services.open(settings)
    runner = web.AppRunner(
        create_app(settings, services, insecure=insecure), shutdown_timeout=SHUTDOWN_TIMEOUT_S
    )
    try:
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        log.info("api.listening", url=f"http://{host}:{port}", auth=bool(settings.bearer_tokens()))
        await _until_stopped()
    finally:
        await runner.cleanup()
        await services.close()


def _log_auth_mode(settings: Settings, *, insecure: bool, host: str) -> None:
    if not settings.bearer_tokens():
        log.warning(
            "api.auth_disabled",
            message="AUTHENTICATION IS DISABLED (--insecure-no-auth): anyone who can reach "
            f"{host} can create, pause and cancel runs and read every mirrored profile",
        )
    elif insecure:
        log.warning("api.insecure_flag_ignored", message="API_TOKENS is set: bearer tokens are required")


async def _until_stopped() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not on this platform/thread
            loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
