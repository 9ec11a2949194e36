"""`employee-sync status --follow` and `employee-sync runs`. Following a running run and Ctrl-C use real
processes, as a user runs them; a finished run's summary and the `runs` listing (what the command
prints) run `cli.main.main` in this process (tests/cli_support.py), in a thread for its own event loop.

The run being followed is finished meanwhile by an in-process burst worker against the simulator.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import time
from collections.abc import Awaitable

import pytest

from cli.progress import follow_status
from cli.wiring import run_fleet_worker
from config import Settings
from devstack.processes import employee_sync_argv
from jobs.control import cancel_run
from simulator.app import RunningSimulator
from tests.cli_support import run_cli_in_process
from tests.conftest import TEST_API_KEY, MakeSimulator, enqueue_ids, population_ids, with_overrides
from worker.runtime import Services

PROGRESS_LINE = re.compile(r"run (\w+) running: (\d+)/(\d+) processed, .* ([\d.]+|-)/(\d+) rps, eta ")


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> RunningSimulator:
    return await make_simulator(population=500)


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "CORESIGNAL_API_KEY": TEST_API_KEY,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        "COLLECT_RPS": str(settings.collect_rps),
    }


async def start_follow(settings: Settings, run_id: str, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *employee_sync_argv("status", run_id, "--follow", *extra),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(settings),
    )


async def within[T](awaitable: Awaitable[T], seconds: float, what: str) -> T:
    try:
        return await asyncio.wait_for(awaitable, timeout=seconds)
    except TimeoutError:
        raise AssertionError(f"{what}: not there after {seconds}s") from None


@pytest.mark.slow
async def test_following_a_finished_run_prints_its_summary_and_exits_at_once(
    settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    receipt = await enqueue_ids(services, population_ids(3))
    await run_fleet_worker(with_overrides(settings, coresignal_base_url=simulator.base_url), burst=True)

    started = time.monotonic()
    result = await asyncio.to_thread(run_cli_in_process, settings, "status", receipt.run_id, "--follow")

    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 5  # one reading, not a wait for the next (off a TTY: 5 s)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout
    assert lines[0].startswith(f"run {receipt.run_id} finished: 3/3 processed in ")
    assert "inserted 3, changed 0, unchanged 0, not found 0, failed 0" in lines[0]
    assert "429s 0" in lines[0]


@pytest.mark.slow
async def test_following_a_running_run_off_a_tty_prints_progress_lines_until_it_finishes(
    settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    # 120 profiles at 60 rps: about two seconds of progress to watch.
    settings = with_overrides(settings, coresignal_base_url=simulator.base_url, collect_rps=60)
    receipt = await enqueue_ids(services, population_ids(120))
    follow = await start_follow(settings, receipt.run_id, "--interval", "0.3")
    assert follow.stdout is not None and follow.stderr is not None
    try:
        first = (await within(follow.stdout.readline(), 60, "the first progress line")).decode()
        assert PROGRESS_LINE.search(first), first
        assert " 0/120 processed" in first

        await run_fleet_worker(settings, burst=True)
        rest = (await within(follow.stdout.read(), 60, "the end of the output")).decode()
        code = await within(follow.wait(), 30, "the exit")
    finally:
        if follow.returncode is None:
            follow.kill()
            await follow.wait()
    stderr = (await follow.stderr.read()).decode()

    assert code == 0, stderr
    lines = [first.rstrip("\n"), *rest.splitlines()]
    progress = [m for m in map(PROGRESS_LINE.search, lines[:-1]) if m]
    assert len(progress) == len(lines) - 1 >= 3, lines
    processed = [int(m.group(2)) for m in progress]
    assert processed == sorted(processed) and processed[-1] > 0, lines
    assert any(m.group(4) != "-" and float(m.group(4)) > 0 for m in progress), lines
    assert all(m.group(5) == "60" for m in progress)
    assert lines[-1].startswith(f"run {receipt.run_id} finished: 120/120 processed"), lines[-1]
    assert "Traceback" not in stderr


@pytest.mark.slow
async def test_ctrl_c_stops_following_with_exit_130_and_no_traceback(
    settings: Settings, services: Services
) -> None:
    receipt = await enqueue_ids(services, population_ids(5))  # no worker: the run stays running
    follow = await start_follow(settings, receipt.run_id, "--interval", "0.2")
    assert follow.stdout is not None and follow.stderr is not None
    try:
        first = (await within(follow.stdout.readline(), 60, "the first progress line")).decode()
        assert PROGRESS_LINE.search(first), first
        follow.send_signal(signal.SIGINT)
        code = await within(follow.wait(), 30, "the exit after SIGINT")
    finally:
        if follow.returncode is None:
            follow.kill()
            await follow.wait()
    assert code == 130
    assert "Traceback" not in (await follow.stderr.read()).decode()


@pytest.mark.slow
async def test_runs_lists_newest_first_and_filters_by_state(settings: Settings, services: Services) -> None:
    created = []
    for count in (1, 2, 3):
        created.append((await enqueue_ids(services, population_ids(count))).run_id)
        await asyncio.sleep(0.01)  # distinct creation times (MongoDB keeps milliseconds)
    await cancel_run(services, created[1])

    listed = await asyncio.to_thread(run_cli_in_process, settings, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["run_id"] for r in runs] == created[::-1]
    assert [(r["state"], r["accepted"]) for r in runs] == [("running", 3), ("cancelled", 2), ("running", 1)]

    only = await asyncio.to_thread(run_cli_in_process, settings, "runs", "--json", "--state", "cancelled")
    assert [r["run_id"] for r in json.loads(only.stdout)] == [created[1]]
    limited = await asyncio.to_thread(run_cli_in_process, settings, "runs", "--json", "--limit", "2")
    assert [r["run_id"] for r in json.loads(limited.stdout)] == created[:0:-1]

    table = await asyncio.to_thread(run_cli_in_process, settings, "runs")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.strip().splitlines()
    assert header.split() == ["id", "kind", "state", "created", "accepted", "done", "failed", "eta"]
    assert [row.split()[0] for row in rows] == created[::-1]
    assert rows[1].split()[1:3] == ["ids", "cancelled"]

    bad = await asyncio.to_thread(run_cli_in_process, settings, "runs", "--state", "sleeping")
    assert bad.returncode == 2
    assert "unknown state 'sleeping'" in bad.stderr


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.slow
async def test_on_a_terminal_follow_draws_a_bar_and_then_the_summary(
    settings: Settings, services: Services, simulator: RunningSimulator
) -> None:
    receipt = await enqueue_ids(services, population_ids(4))
    await run_fleet_worker(with_overrides(settings, coresignal_base_url=simulator.base_url), burst=True)
    out = FakeTty()

    code = await follow_status(settings, receipt.run_id, out=out)

    assert code == 0
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", out.getvalue())  # without the terminal's escapes
    assert f"{receipt.run_id[:8]} finished" in text
    assert re.search(r"4/4 .*/54 rps ETA - 429s 0 failed 0", text), text
    assert text.rstrip().splitlines()[-1].startswith(f"run {receipt.run_id} finished: 4/4 processed")
