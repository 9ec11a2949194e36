"""A tiny upstream on a real socket, for answers the simulator never gives (odd headers, echoed keys)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def stub_upstream(handler: Handler) -> AsyncIterator[str]:
    """Serve `handler` for every path on a free loopback port; yields the base URL (".../cdapi")."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/cdapi"
    finally:
        await runner.cleanup()
