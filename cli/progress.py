"""Run progress on the terminal: `status RUN_ID --follow` and `runs`.

`--follow` on a terminal draws a live bar (processed/accepted, collect rate against the limit, ETA,
429s, failures); when stdout is not a terminal it prints one plain line per interval instead. Either
way it ends with a one-line summary once the run is no longer running or enqueueing.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from config import Settings
from jobs.runs import RunState, RunStatus, get_status, list_runs
from worker.errors import InputError, TransientError
from worker.runtime import Services

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
LIVE_STATES = frozenset({RunState.RUNNING.value, RunState.ENQUEUEING.value})
TTY_INTERVAL_S = 1.0
PLAIN_INTERVAL_S = 5.0
RATE_WINDOW_S = 10.0


@dataclass(slots=True)
class RateMeter:
    """Items per second from successive readings of a run's processed counter, over a sliding window."""

    window_s: float = RATE_WINDOW_S
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at_s: float, processed: int) -> float | None:
        self.samples.append((at_s, processed))
        while len(self.samples) > 2 and at_s - self.samples[1][0] >= self.window_s:
            self.samples.popleft()
        (first_s, first), (last_s, last) = self.samples[0], self.samples[-1]
        return (last - first) / (last_s - first_s) if last_s > first_s else None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _rate_text(rps: float | None, limit_rps: float) -> str:
    return f"{'-' if rps is None else f'{rps:.1f}'}/{limit_rps:g} rps"


def progress_line(status: RunStatus, rps: float | None, limit_rps: float) -> str:
    """The plain (non-terminal) progress line."""
    c = status.counts
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    return (
        f"{stamp} run {status.run_id} {status.state}: {status.processed}/{status.accepted} processed, "
        f"done {status.done}, not found {c.get('not_found', 0)}, failed {c.get('failed', 0)}, "
        f"429s {c.get('upstream_429', 0)}, {_rate_text(rps, limit_rps)}, eta {format_duration(status.eta_s)}"
    )


def summary_line(status: RunStatus) -> str:
    c = status.counts
    took = ""
    if status.created_at is not None and status.finished_at is not None:
        took = f" in {format_duration((status.finished_at - status.created_at).total_seconds())}"
    text = (
        f"run {status.run_id} {status.state}: {status.processed}/{status.accepted} processed{took}; "
        f"inserted {c.get('inserted', 0)}, changed {c.get('changed', 0)}, unchanged {c.get('unchanged', 0)}, "
        f"not found {c.get('not_found', 0)}, failed {c.get('failed', 0)}, "
        f"skipped fresh {c.get('skipped_fresh', 0)}, shared with other runs {c.get('shared', 0)}, "
        f"429s {c.get('upstream_429', 0)}, retries {c.get('retries', 0)}"
    )
    reason = status.details.get("error") or status.details.get("pause_reason")
    return f"{text}; {reason}" if reason else text


class _Bar:
    """The live rich bar; fields are filled from each reading."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("429s {task.fields[r429]}"),
            TextColumn("failed {task.fields[failed]}"),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def show(self, status: RunStatus, rps: float | None, limit_rps: float) -> None:
        c = status.counts
        fields: dict[str, Any] = {
            "description": f"{status.run_id[:8]} {status.state}",
            "completed": status.processed,
            "total": status.accepted or None,
            "rate": _rate_text(rps, limit_rps),
            "eta": format_duration(status.eta_s),
            "r429": c.get("upstream_429", 0),
            "failed": c.get("failed", 0),
        }
        if self.task is None:
            self.task = self.progress.add_task(**fields)
        else:
            self.progress.update(self.task, **fields)


async def follow_status(
    settings: Settings,
    run_id: str,
    *,
    interval_s: float | None = None,
    as_json: bool = False,
    out: TextIO | None = None,
) -> int:
    """Follow a run until it stops running; returns the exit code (1: no such run, or it failed)."""
    if interval_s is not None and interval_s <= 0:
        print("error: --interval must be positive", file=sys.stderr)
        return EXIT_USAGE
    out = out or sys.stdout
    console = Console(file=out)
    live = console.is_terminal and not as_json
    interval_s = interval_s or (TTY_INTERVAL_S if live else PLAIN_INTERVAL_S)
    limit_rps = settings.collect_rps
    meter = RateMeter()
    services = await Services.open(settings)
    try:
        with _maybe_bar(console, live) as bar:
            while True:
                try:
                    status = await get_status(services, run_id)
                except TransientError as exc:  # a blip of Redis or MongoDB: keep following
                    print(f"waiting: {exc}", file=sys.stderr, flush=True)
                    await asyncio.sleep(interval_s)
                    continue
                if status is None:
                    print(f"error: no run {run_id!r}", file=sys.stderr)
                    return EXIT_FAILED
                rps = meter.add(time.monotonic(), status.processed)
                if status.state not in LIVE_STATES:
                    if bar is not None:
                        bar.show(status, rps, limit_rps)
                    break
                if bar is not None:
                    bar.show(status, rps, limit_rps)
                elif as_json:
                    print(json.dumps({**status.as_dict(), "rps": rps}, default=str), file=out, flush=True)
                else:
                    print(progress_line(status, rps, limit_rps), file=out, flush=True)
                await asyncio.sleep(interval_s)
    finally:
        await services.close()
    if as_json:
        print(json.dumps({**status.as_dict(), "final": True}, default=str), file=out, flush=True)
    else:
        print(summary_line(status), file=out, flush=True)
    return EXIT_FAILED if status.state == RunState.FAILED.value else EXIT_OK


@contextmanager
def _maybe_bar(console: Console, live: bool) -> Iterator[_Bar | None]:
    if not live:
        yield None
        return
    bar = _Bar(console)
    with bar.progress:
        yield bar


async def show_runs(
    settings: Settings, *, state: str | None, limit: int, as_json: bool, out: TextIO | None = None
) -> int:
    """List runs newest first (`jobs.control.list_runs`), as a table or as JSON."""
    out = out or sys.stdout
    if limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    services = await Services.open(settings)
    try:
        page = await list_runs(services, state=state, limit=limit, cursor=None)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        await services.close()
    if as_json:
        print(json.dumps([run.as_dict() for run in page.runs], indent=2, default=str), file=out)
        return EXIT_OK
    console = Console(file=out)
    if not console.is_terminal:
        console = Console(file=out, width=160)  # a pipe: no wrapping of run ids
    table = Table("id", "kind", "state", "created", "accepted", "done", "failed", "eta", box=None)
    for run in page.runs:
        created = run.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if run.created_at else "-"
        table.add_row(
            run.run_id,
            run.kind,
            run.state,
            created,
            str(run.accepted),
            str(run.done),
            str(run.counts.get("failed", 0)),
            format_duration(run.eta_s),
        )
    console.print(table)
    return EXIT_OK
