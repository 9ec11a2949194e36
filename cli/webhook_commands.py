"""The `webhooks`, `subscriptions` and `changes` commands (registered by cli.main)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from config import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _since(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _print(data: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    elif isinstance(data, list):
        for item in data:
            print(f"{item['id']}\t{item['type']}\t{item['selection']}\texpires {item.get('expiring_at')}")
    else:
        for key, value in data.items():
            print(f"{key}: {value}")


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from cli.webhook_wiring import replay

    count = _run(replay(settings, args.since))
    print(json.dumps({"replayed": count}) if args.json else f"re-expanded {count} inbox entries")
    return EXIT_OK


def _ids_file(path: str) -> list[int]:
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    ids = [int(line) for line in lines if line]  # ValueError names the bad line's text
    if not ids or any(i <= 0 for i in ids):
        raise ValueError("the ids file must hold positive integers, one a line")
    return sorted(set(ids))


def cmd_subscriptions(settings: Settings, args: argparse.Namespace) -> int:
    from cli.webhook_wiring import manage
    from jobs.subscriptions import Selection

    if args.action != "create":
        kwargs = {} if args.action == "list" else {"subscription_id": args.id}
        _print(_run(manage(settings, args.action, **kwargs)), args.json)
        return EXIT_OK
    try:
        if args.ids:
            selection = Selection(ids=_ids_file(args.ids))
        elif args.query:
            selection = Selection(query=json.loads(Path(args.query).read_text(encoding="utf-8")))
        else:
            selection = Selection()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    created = _run(
        manage(settings, "create", kind=args.type, selection=selection, collect_unknown=args.collect_unknown)
    )
    _print(created, args.json)
    return EXIT_OK


def cmd_changes(settings: Settings, args: argparse.Namespace) -> int:
    from cli.webhook_wiring import print_changes

    _run(
        print_changes(
            settings, since=args.since, employee_id=args.employee, event_type=args.type,
            limit=args.limit, as_json=args.json, follow=args.follow, interval_s=args.interval,
        )
    )  # fmt: skip
    return EXIT_OK


def add_commands(sub: Any) -> None:
    hooks = sub.add_parser("webhooks", help="the webhook inbox")
    hooks_sub = hooks.add_subparsers(dest="action", required=True)
    replay = hooks_sub.add_parser("replay", help="re-expand received notices into refreshes")
    replay.add_argument("--since", type=_since, help="only entries received at or after this ISO time")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=cmd_replay)

    subs = sub.add_parser("subscriptions", help="webhook subscriptions upstream (spec §9)")
    subs_sub = subs.add_subparsers(dest="action", required=True)
    create = subs_sub.add_parser("create", help="subscribe; prints the webhook URL (with its token) once")
    pick = create.add_mutually_exclusive_group(required=True)
    pick.add_argument("--ids", metavar="FILE", help="employee ids, one a line (- for stdin)")
    pick.add_argument("--query", metavar="Q.json", help='an ES-DSL body {"query": ...}')
    pick.add_argument("--all", action="store_true", help="every employee")
    create.add_argument("--type", choices=["experience", "profile"], default="experience")
    create.add_argument(
        "--collect-unknown", action=argparse.BooleanOptionalAction, default=None,
        help="collect noticed ids we do not mirror yet (default: yes for --ids, no otherwise)",
    )  # fmt: skip
    create.add_argument("--json", action="store_true")
    create.set_defaults(handler=cmd_subscriptions)
    listing = subs_sub.add_parser("list", help="subscriptions recorded here")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_subscriptions)
    for action in ("show", "renew", "delete"):
        one = subs_sub.add_parser(action, help=f"{action} one subscription")
        one.add_argument("id")
        one.add_argument("--json", action="store_true")
        one.set_defaults(handler=cmd_subscriptions)

    changes = sub.add_parser("changes", help="the change feed: what changed in the mirror")
    changes.add_argument("--since", type=_since, help="detected at or after this ISO time")
    changes.add_argument("--employee", type=int, help="only this employee id")
    changes.add_argument("--type", choices=["role_started", "role_ended", "role_changed"])
    changes.add_argument("--limit", type=int, default=500, help="events per page (1..1000)")
    changes.add_argument("--json", action="store_true", help="JSON lines")
    changes.add_argument("--follow", action="store_true", help="keep printing new events")
    changes.add_argument("--interval", type=float, default=2.0, help="--follow: seconds between polls")
    changes.set_defaults(handler=cmd_changes)
