"""A MongoDB wire-protocol server for tests, CI and the local demo (mongoeco, in memory).

Production uses real MongoDB; no `mongod` can be installed on these machines, so this stands in,
reached by the real PyMongo driver over TCP. Run: `python -m devstack.mongo_wire --port 27018`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal


async def serve(host: str, port: int) -> None:
    from mongoeco.engines.memory import MemoryEngine  # a dev dependency: import only when used
    from mongoeco.wire.proxy import AsyncMongoEcoProxyServer

    server = AsyncMongoEcoProxyServer(
        engine=MemoryEngine(),
        host=host,
        port=port,
        mongodb_dialect="7.0",
        pymongo_profile="auto-installed",
    )
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"mongo-wire listening on {host}:{port}", flush=True)
    await stop.wait()
    await server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27018)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
