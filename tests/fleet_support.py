"""Helpers for tests that drive real processes: workers, the simulator, a TCP proxy, a Redis of their own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from config import Settings
from devstack import processes as svc
from jobs.runs import RunState, get_status
from tests.conftest import TEST_API_KEY
from worker.runtime import Services

TERMINAL = (RunState.FINISHED, RunState.FAILED, RunState.CANCELLED)


def run_cli(
    settings: Settings, *args: str, stdin: str | bytes | None = None, timeout_s: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    """`employee-sync ARGS` as a user runs it: a real process on the test's Redis and database."""
    environment = {
        **os.environ,
        "CORESIGNAL_API_KEY": TEST_API_KEY,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        **env,
    }
    text = stdin.decode() if isinstance(stdin, bytes) else stdin
    return subprocess.run(
        svc.employee_sync_argv(*args),
        input=text, capture_output=True, text=True, env=environment, timeout=timeout_s, check=False,
    )  # fmt: skip


def sim_admin(port: int, method: str, path: str, body: object = None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_sim/{path}",
        data=data,
        method=method,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.load(resp))


def sim_stats(port: int) -> dict[str, Any]:
    return sim_admin(port, "GET", "stats")


@contextlib.contextmanager
def simulator_process(log_dir: Path, *extra: str, population: int = 2000) -> Iterator[int]:
    port = svc.free_port()
    args = ["--api-key", TEST_API_KEY, "--population", str(population), *extra]
    proc = svc.start_simulator(port, extra=args, log_path=log_dir / "simulator.log")
    try:
        yield port
    finally:
        svc.stop(proc)


def worker_env(settings: Settings, sim_port: int, **extra: str) -> dict[str, str]:
    return {
        "CORESIGNAL_API_KEY": TEST_API_KEY,
        "CORESIGNAL_BASE_URL": f"http://127.0.0.1:{sim_port}/cdapi",
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "LOG_JSON": "true",
        **extra,
    }


def start_worker(env: dict[str, str], log: Path, concurrency: int = 20) -> subprocess.Popen[bytes]:
    return svc.spawn(
        svc.employee_sync_argv("worker", "--concurrency", str(concurrency)), env=env, log_path=log
    )


async def wait_for(
    services: Services,
    run_id: str,
    *,
    processed: int | None = None,
    states: tuple[str, ...] = TERMINAL,
    timeout_s: float,
) -> None:
    deadline = time.monotonic() + timeout_s
    status = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # a store may be away on purpose in these tests
            status = await get_status(services, run_id)
            assert status is not None
            if processed is not None and status.processed >= processed:
                return
            if processed is None and status.state in states:
                return
        await asyncio.sleep(0.2)
    raise AssertionError(f"run {run_id} not there after {timeout_s}s: {status and status.as_dict()}")


def job_events(log_paths: list[Path], event: str = "job.done") -> list[dict[str, Any]]:
    events = []
    for path in log_paths:
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"{event}"' in line:
                with contextlib.suppress(ValueError):
                    events.append(json.loads(line))
    return events


@contextlib.contextmanager
def own_redis(log_dir: Path) -> Iterator[tuple[int, Any]]:
    """A redis-server of the test's own on a spare port, with a function to restart it empty."""
    port = svc.free_port()
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    procs = [svc.spawn(argv, log_path=log_dir / "own-redis.log")]
    svc.wait_for_port("127.0.0.1", port, timeout_s=10, proc=procs[0])

    async def restart(down_s: float) -> None:
        svc.stop(procs[-1])
        await asyncio.sleep(down_s)  # the workers keep running meanwhile: nothing here may block
        procs.append(svc.spawn(argv, log_path=log_dir / "own-redis.log"))
        await asyncio.to_thread(svc.wait_for_port, "127.0.0.1", port, timeout_s=10, proc=procs[-1])

    try:
        yield port, restart
    finally:
        for proc in procs:
            svc.stop(proc)


SENTINEL_MASTER = "es-primary"


def sentinel_binary() -> list[str] | None:
    """How to start a sentinel here: Debian's redis-sentinel, or redis-server in sentinel mode."""
    if shutil.which("redis-sentinel"):
        return [str(shutil.which("redis-sentinel"))]
    server = shutil.which("redis-server")
    return [server, "--sentinel"] if server else None


@dataclass
class SentinelSet:
    """One primary, one replica and three sentinels on loopback ports (started by `sentinel_redis`)."""

    primary: subprocess.Popen[bytes]
    primary_port: int
    replica_port: int
    sentinel_ports: list[int]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0"

    def master_port(self) -> int | None:
        """The primary's port as the sentinels' majority names it now."""
        ports = []
        for port in self.sentinel_ports:
            with contextlib.suppress(redis.RedisError, OSError):
                client = redis.Redis(port=port, socket_timeout=2)
                addr = client.sentinel_get_master_addr_by_name(SENTINEL_MASTER)
                client.close()
                if addr:
                    ports.append(int(addr[1]))
        return max(set(ports), key=ports.count) if ports else None


@contextlib.contextmanager
def sentinel_redis(log_dir: Path, *, down_after_ms: int = 2500) -> Iterator[SentinelSet]:
    """Real redis-server processes: a primary, its replica, three sentinels watching them (quorum 2)."""
    sentinel = sentinel_binary()
    server = shutil.which("redis-server")
    assert sentinel is not None and server is not None
    primary_port, replica_port = svc.free_port(), svc.free_port()
    # --dir: a replica's full sync writes the received snapshot to its working directory.
    base = [server, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(log_dir)]
    procs = [svc.spawn([*base, "--port", str(primary_port)], log_path=log_dir / "primary.log")]
    replica_args = ["--port", str(replica_port), "--replicaof", "127.0.0.1", str(primary_port)]
    procs.append(svc.spawn([*base, *replica_args], log_path=log_dir / "replica.log"))
    ports = [svc.free_port() for _ in range(3)]
    try:
        for port in (primary_port, replica_port):
            svc.wait_for_port("127.0.0.1", port, timeout_s=10, proc=None)
        for i, port in enumerate(ports):
            conf = log_dir / f"sentinel-{i}.conf"  # a sentinel rewrites its config: one file each
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {log_dir}\n"
                f"sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {primary_port} 2\n"
                f"sentinel down-after-milliseconds {SENTINEL_MASTER} {down_after_ms}\n"
                f"sentinel failover-timeout {SENTINEL_MASTER} 10000\n"
            )
            procs.append(
                svc.spawn([sentinel[0], str(conf), *sentinel[1:]], log_path=log_dir / f"sentinel-{i}.log")
            )
            svc.wait_for_port("127.0.0.1", port, timeout_s=10, proc=procs[-1])
        sentinels = SentinelSet(procs[0], primary_port, replica_port, ports)
        _wait_until_watching(sentinels)
        yield sentinels
    finally:
        for proc in procs:
            svc.stop(proc)


def _wait_until_watching(sentinels: SentinelSet) -> None:
    """Until the replica is in sync and every sentinel knows it and the two other sentinels
    (without that, a failover cannot be agreed)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            replica = redis.Redis(port=sentinels.replica_port, socket_timeout=2)
            synced = replica.info("replication").get("master_link_status") == "up"
            replica.close()
            ready = synced
            for port in sentinels.sentinel_ports:
                client = redis.Redis(port=port, socket_timeout=2, decode_responses=True)
                state = client.sentinel_master(SENTINEL_MASTER)
                ready = ready and int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= 2
                client.close()
            if ready:
                return
        time.sleep(0.2)
    raise RuntimeError("the sentinels did not see the replica and each other within 60 s")


class TcpProxy:
    """A loopback TCP proxy that can cut every connection and refuse new ones for a while:
    MongoDB "unreachable" for the workers, while the server and its data stay up."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self.cut = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.disconnect_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def disconnect_all(self) -> None:
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._open.discard(w)
            w.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


@contextlib.asynccontextmanager
async def tcp_proxy(target_port: int) -> AsyncIterator[TcpProxy]:
    proxy = TcpProxy(target_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


def report_row(path: str | None, **row: Any) -> None:
    """Append one result row for the reliability table (when CHAOS_REPORT names a file)."""
    if path:
        with Path(path).open("a") as out:
            out.write(json.dumps(row) + "\n")
