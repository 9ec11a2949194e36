"""A tiny upstream on a real socket, for answers the simulator never gives (odd headers, echoed keys)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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


@asynccontextmanager
async def raw_upstream(serve: Serve) -> AsyncIterator[str]:
    """Serve raw connections with `serve` (what an HTTP server would hide: connections counted,
    requests dropped unanswered); yields the base URL. A connection is closed when `serve` returns
    or the client goes away, and every one at the end."""
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/cdapi"
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()
