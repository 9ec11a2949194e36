"""Starting the local stand-ins: Redis (when none answers), the Mongo-wire server, the simulator, workers.

Used by `employee-sync demo`, the benchmarks and the test fixtures, so all three run the same way.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int, timeout_s: float = 0.2) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def wait_for_port(host: str, port: int, *, timeout_s: float, proc: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_answers(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{_describe(proc)} exited with code {proc.returncode} before listening")
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {host}:{port} after {timeout_s:.0f}s")


def _describe(proc: subprocess.Popen[bytes]) -> str:
    args = proc.args if isinstance(proc.args, list) else [str(proc.args)]
    return " ".join(str(a) for a in args[:4])


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM when its parent dies, so a killed demo or test run leaks nothing."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group, output to a log file (or inherited)."""
    out = log_path.open("ab") if log_path is not None else None
    try:
        return subprocess.Popen(  # noqa: S603 - argv is built by us, never from user text
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
    finally:
        if out is not None:
            out.close()


def stop(proc: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> int | None:
    """SIGTERM, then SIGKILL if it does not go within timeout_s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    return proc.returncode


def employee_sync_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def start_mongo_wire(port: int, *, log_path: Path | None = None) -> subprocess.Popen[bytes]:
    proc = spawn([sys.executable, "-m", "devstack.mongo_wire", "--port", str(port)], log_path=log_path)
    wait_for_port("127.0.0.1", port, timeout_s=30, proc=proc)
    return proc


def start_simulator(
    port: int, *, extra: Sequence[str] = (), log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    argv = employee_sync_argv("simulator", "--host", "127.0.0.1", "--port", str(port), *extra)
    proc = spawn(argv, log_path=log_path)
    wait_for_port("127.0.0.1", port, timeout_s=30, proc=proc)
    return proc


def redis_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


@contextlib.contextmanager
def redis_available(url: str, *, log_path: Path | None = None) -> Iterator[None]:
    """Use the Redis at `url` if it answers; otherwise start a throwaway one there for the duration."""
    host, port = redis_host_port(url)
    if port_answers(host, port):
        yield
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"no Redis answers at {host}:{port} and redis-server is not installed "
            "(apt-get install -y redis-server)"
        )
    argv = [binary, "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = spawn(argv, log_path=log_path)
    try:
        wait_for_port(host, port, timeout_s=15, proc=proc)
        yield
    finally:
        stop(proc)
