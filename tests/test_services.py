"""The local service launchers used by the demo, benchmarks and fixtures."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack import processes as svc


def _state(pid: int) -> str:
    status = Path(f"/proc/{pid}/status")
    if not status.exists():
        return "gone"
    return next(line.split()[1] for line in status.read_text().splitlines() if line.startswith("State:"))


@pytest.mark.skipif(sys.platform != "linux", reason="uses prctl(PR_SET_PDEATHSIG)")
def test_a_spawned_service_does_not_outlive_a_killed_parent() -> None:
    code = "from devstack import processes as s; p = s.spawn(['sleep', '30']); print(p.pid, flush=True)"
    child = int(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )
    deadline = time.monotonic() + 5
    while _state(child) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(child) in ("gone", "Z")  # dead (a zombie until init reaps it)


def test_free_ports_are_free_and_wait_for_port_fails_fast_on_a_dead_child() -> None:
    port = svc.free_port()
    assert not svc.port_answers("127.0.0.1", port)
    proc = svc.spawn([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="exited with code 3"):
        svc.wait_for_port("127.0.0.1", port, timeout_s=10, proc=proc)
