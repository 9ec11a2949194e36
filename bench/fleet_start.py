"""Start a benchmark's processes so that they compete from one moment, whatever their start-up costs.

A process is ready once its imports are done and its clients are open (and warm); only then does
the parent name a start time, the same for all. A start time fixed before launch (as the benches
once did, launch + 2 s) is not enough on a 2-core machine: 8 Python processes importing aiohttp,
pydantic and redis need several CPU seconds, and the first ones to be ready spent their first
seconds competing with the others' imports.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

READY = "ready"


def launch_together(argv: list[str], count: int, *, lead_s: float = 0.5) -> list[subprocess.Popen[str]]:
    """Start `count` processes of `argv`, wait for each to be ready, then give them one start time."""
    procs = [
        subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None and proc.stdin is not None
        said = proc.stdout.readline().strip()
        if said != READY:
            for other in procs:
                other.kill()
            raise RuntimeError(f"bench process said {said!r} instead of {READY!r} (exit {proc.wait()})")
    start_at = time.time() + lead_s
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(f"{start_at!r}\n")
        proc.stdin.flush()
    return procs


async def ready_then_start() -> float:
    """The process side: say ready, sleep until the parent's start time, return it (wall clock)."""
    print(READY, flush=True)
    line = await asyncio.to_thread(sys.stdin.readline)
    start_at = float(line)
    await asyncio.sleep(max(0.0, start_at - time.time()))
    return start_at
