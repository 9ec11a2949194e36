"""`employee-sync syncs create|list|show|pause|resume|delete|run-now` and `employee-sync freshness`.

A refused definition (bad duration, max-age shorter than the interval, an empty or bad id file, a
malformed query, a name in use) prints `error: ...` and exits 2; nothing is saved.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from config import Settings
from worker.errors import InputError
from worker.sync_model import SyncSource

EXIT_OK, EXIT_USAGE = 0, 2


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text: {exc.reason}") from None
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def _request(args: argparse.Namespace) -> Any:
    from jobs.syncs import SyncRequest

    if args.ids is not None or args.names is not None:
        source = SyncSource.IDS if args.ids is not None else SyncSource.NAMES
        text = _read_text(args.ids if args.ids is not None else args.names)
        lines = list(enumerate(text.splitlines(), start=1))
        query_text = None
    else:
        source, lines, query_text = SyncSource.QUERY, None, _read_text(args.query)
    return SyncRequest(
        name=args.name,
        source=source,
        lines=lines,
        query_text=query_text,
        max_age=args.max_age,
        every=args.every,
        credits_per_day=args.credits_per_day,
        webhooks=args.webhooks,
        sweep_check=not args.no_sweep_check,
    )


def _show_sync(sync: dict[str, Any]) -> None:
    plan = sync.get("last_plan") or {}
    print(
        f"{sync['name']}: {sync['state']}, {sync['source']}, {sync['members']} members, "
        f"max-age {sync['max_age']}, every {sync['every']}, credits/day {sync['credits_per_day'] or '-'}"
        f"{', webhooks' if sync['webhooks'] else ''}"
    )
    print(
        f"  next due {sync['next_due_at']}, last tick {sync['last_tick_at'] or '-'}, "
        f"run {sync['current_run_id'] or '-'}"
    )
    if sync.get("watermark"):
        print(f"  watermark (last_updated) {sync['watermark']}")
    if plan:
        print("  last plan: " + ", ".join(f"{k} {v}" for k, v in plan.items() if v is not None))
    if sync.get("sweep_paused_reason"):
        print(f"  sweep paused: {sync['sweep_paused_reason']}")
    if sync.get("webhooks"):
        error = f" ({sync['webhook_error']})" if sync.get("webhook_error") else ""
        print(f"  webhooks: {sync.get('webhook_state')}{error}")
        for sub in sync.get("webhook_subscriptions") or []:
            size = f", {sub['ids_count']} ids" if sub.get("ids_count") is not None else ""
            print(
                f"    subscription {sub['id']}: {sub['status']}, {sub['selection']}{size}, "
                f"expires {sub['expiring_at']}"
            )


def _show_freshness(row: dict[str, Any]) -> None:
    budget = row["credits_per_day"] if row["credits_per_day"] is not None else "unlimited"
    print(
        f"{row['sync']}: {row['members']} members ({row['unmatched']} no longer matching), "
        f"{row['mirrored']} mirrored, "
        f"over max-age {row['over_max_age']} ({100 * row['over_max_age_ratio']:.1f} %), "
        f"oldest {row['oldest_age_s']} s, credits this period {row['credits_today']} of {budget}, "
        f"changes per 100 re-collects {row['changes_per_100_recollects']}"
    )
    buckets = ", ".join(f"<={b['le_s']:g}s {b['count']}" for b in row["staleness_histogram"] if b["count"])
    print(f"  staleness (cumulative): {buckets or '-'}")
    if row.get("sweep_paused_reason"):
        print(f"  sweep paused: {row['sweep_paused_reason']}")


def cmd_syncs(settings: Settings, args: argparse.Namespace) -> int:
    from cli import sync_wiring as w

    try:
        if args.action == "create":
            result: Any = asyncio.run(w.sync_create(settings, _request(args)))
        elif args.action == "list":
            result = asyncio.run(w.sync_list(settings))
        elif args.action == "show":
            result = asyncio.run(w.sync_show(settings, args.name))
        else:
            result = asyncio.run(w.sync_action(settings, args.action, args.name))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json(result if result is not None else {"deleted": args.name})
    elif args.action == "list":
        for sync in result:
            _show_sync(sync)
    elif result is None:
        print(f"deleted sync {args.name} (mirrored profiles are kept)")
    else:
        _show_sync(result)
        if "freshness" in result:
            _show_freshness(result["freshness"])
    return EXIT_OK


def cmd_freshness(settings: Settings, args: argparse.Namespace) -> int:
    from cli import sync_wiring as w

    try:
        rows = asyncio.run(w.freshness_report(settings, args.name))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json(rows if args.name is None else rows[0])
    else:
        for row in rows:
            _show_freshness(row)
    return EXIT_OK


def add_parsers(sub: Any) -> None:
    syncs = sub.add_parser("syncs", help="saved syncs that keep part of the mirror within a max age")
    actions = syncs.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="save a sync (ids, names or a query)")
    create.add_argument("name")
    member = create.add_mutually_exclusive_group(required=True)
    member.add_argument("--ids", metavar="FILE", help="employee ids, one per line")
    member.add_argument("--names", metavar="FILE", help="shorthand names or profile URLs, one per line")
    member.add_argument("--query", metavar="Q.json", help="an ES-DSL body: members are its matches")
    create.add_argument("--max-age", default="7d", help="refresh a profile before it is older (s, m, h, d)")
    create.add_argument("--every", default="6h", help="how often the scheduler plans this sync")
    create.add_argument("--credits-per-day", type=int, help="this sync's collect credits per day")
    create.add_argument("--webhooks", action="store_true", help="let webhook notices refresh between ticks")
    create.add_argument(
        "--no-sweep-check",
        action="store_true",
        help="re-collect every due member instead of first asking the API which ones changed",
    )
    create.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="every sync")
    listing.add_argument("--json", action="store_true")
    for action, what in (
        ("show", "a sync with its freshness"),
        ("pause", "stop planning it (a run in flight finishes)"),
        ("resume", "plan it again (due at once)"),
        ("delete", "forget the definition (mirrored profiles stay)"),
        ("run-now", "make it due now"),
    ):
        one = actions.add_parser(action, help=what)
        one.add_argument("name")
        one.add_argument("--json", action="store_true")
    syncs.set_defaults(handler=cmd_syncs)
    fresh = sub.add_parser("freshness", help="how fresh each sync's profiles are")
    fresh.add_argument("name", nargs="?")
    fresh.add_argument("--json", action="store_true")
    fresh.set_defaults(handler=cmd_freshness)
