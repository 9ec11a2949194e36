"""`employee-sync`: the composition root. Builds the settings once and wires worker, jobs and simulator.

(A note for developers; what users see is DESCRIPTION and EPILOG below.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cli.failures import describe, listen_error, read_error
from config import Settings, configure_logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SOME_REJECTED = 0, 1, 2, 3


def build_settings(**overrides: Any) -> Settings:
    """The one place the environment is read."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import run_fleet_worker
    from worker.runtime import settle_heap

    settings.require_api_key()  # before anything is opened: `configuration error: ...`, exit 2
    settings = settings.model_copy(
        update={"worker_concurrency": args.concurrency or settings.worker_concurrency}
    )
    settle_heap()  # everything is imported: start-up's objects need no more collecting
    return _run(run_fleet_worker(settings, burst=args.burst))


def cmd_simulator(settings: Settings, args: argparse.Namespace) -> int:
    from simulator.app import serve
    from simulator.config import SimulatorConfig

    fields: dict[str, Any] = {
        "seed": args.seed, "population": args.population, "retry_after_s": args.retry_after_s,
        "credits": args.credits, "collect_rps": args.collect_rps, "search_rps": args.search_rps,
        "bulk_rps": args.bulk_rps,
    }  # fmt: skip
    if args.api_key:
        fields["api_keys"] = args.api_key
    try:
        config = SimulatorConfig(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            flag = "--" + "-".join(str(error["loc"][0]).split("_")).replace("api-keys", "api-key")
            print(f"error: {flag}: {_pydantic_message(error['msg'])}", file=sys.stderr)
        return EXIT_USAGE
    print(f"simulator listening on http://{args.host}:{args.port}/cdapi", file=sys.stderr, flush=True)
    return _serve(serve(config, args.host, args.port), args.host, args.port)


def cmd_enqueue(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import enqueue_file

    if args.kind == "names" and args.via == "bulk":
        print("error: names stay on collect (bulk collect takes employee ids)", file=sys.stderr)
        return EXIT_USAGE
    if args.dry_run:
        return cmd_plan(settings, args)
    if args.kind == "search":
        return _enqueue_search(settings, args)
    if args.max_profiles is not None:
        print("error: --max-profiles applies to search runs only", file=sys.stderr)
        return EXIT_USAGE

    source = "-" if args.file == "-" else str(Path(args.file))
    try:  # a pipe or process substitution (<(...)) is fine: only reading decides
        with _open_input(source, seekable=args.via == "auto") as stream:
            if hasattr(stream, "peek"):
                stream.peek(1)  # an unreadable input fails here, before a run is created for it
            receipt = _run_value(
                enqueue_file(settings, stream, args.kind, source=source, quiet=args.json, via=args.via)
            )
    except OSError as exc:  # the stores' failures arrive translated: an OSError here is the input's
        print(read_error(exc, source), file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        _print_json({**receipt.as_dict(), "rejected_lines": [
            {"line": r.line, "value": r.value, "reason": r.reason} for r in receipt.rejected
        ]})  # fmt: skip
    else:
        print(receipt.run_id)
        print(
            f"accepted {receipt.accepted}, rejected {receipt.rejected_count}, "
            f"duplicates {receipt.duplicates}",
            file=sys.stderr,
        )
    return EXIT_SOME_REJECTED if receipt.rejected_count else EXIT_OK


def _enqueue_search(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import enqueue_search

    source = "-" if args.file == "-" else str(Path(args.file))
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text("utf-8", errors="replace")
    except OSError as exc:
        print(read_error(exc, source), file=sys.stderr)
        return EXIT_USAGE
    if args.max_profiles is not None and args.max_profiles < 1:
        print("error: --max-profiles must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    run_id = _run_value(
        enqueue_search(settings, text, max_profiles=args.max_profiles, source=source, via=args.via)
    )
    if args.json:
        _print_json({"run_id": run_id, "kind": "search", "max_profiles": args.max_profiles, "via": args.via})
    else:
        print(run_id)
    return EXIT_OK


def cmd_resume(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import resume

    report = _run_value(resume(settings, args.run_id))
    data = {
        "run_id": report.run_id,
        "pending": report.pending,
        "recovered": report.recovered,
        "search_page": report.search_page,
    }
    if args.json:
        _print_json(data)
    else:
        print(
            f"run {report.run_id}: {report.pending} items to collect, {report.recovered} already synced",
            end="",
        )
        print("" if report.search_page is None else f", search continues at page {report.search_page}")
    return EXIT_OK


def cmd_pause_or_cancel(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import control

    status = _run_value(control(settings, args.command, args.run_id))
    if args.json:
        _print_json(status.as_dict())
    else:
        print(f"run {status.run_id} is {status.state}")
    return EXIT_OK


def _open_input(source: str, *, seekable: bool = False) -> Any:
    """The input as a binary stream. `seekable` (the planner reads the input twice): standard input
    and pipes (`<(...)`) are spooled to a temporary file first."""
    import contextlib
    import shutil
    import tempfile

    if not seekable or (source != "-" and Path(source).is_file()):
        return contextlib.nullcontext(sys.stdin.buffer) if source == "-" else Path(source).open("rb")
    spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)  # noqa: SIM115 - closed by the caller's with
    try:  # an input that cannot be read (a directory, EIO) closes the spool before its error is reported
        with contextlib.ExitStack() as stack:
            stream = sys.stdin.buffer if source == "-" else stack.enter_context(Path(source).open("rb"))
            shutil.copyfileobj(stream, spool)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def cmd_plan(settings: Settings, args: argparse.Namespace) -> int:
    """`plan ids FILE` / `plan search Q.json` (and `enqueue --dry-run`): print the plan, spend nothing."""
    from cli.wiring import plan_file, plan_search_text

    if args.kind == "search":
        text, _ = _read_text(args.file)
        if text is None:
            return EXIT_USAGE
        plan = _run_value(plan_search_text(settings, text, max_profiles=args.max_profiles, via=args.via))
    else:
        source = "-" if args.file == "-" else str(Path(args.file))
        if source != "-" and not Path(source).is_file():
            print(f"error: no such file: {source}", file=sys.stderr)
            return EXIT_USAGE
        with _open_input(source) as stream:
            plan = _run_value(plan_file(settings, stream, args.kind, args.via))
    if args.json:
        _print_json(plan.as_dict())
    else:
        print(plan.render())
    return EXIT_OK


def _read_text(file: str) -> tuple[str | None, str]:
    if file == "-":
        return sys.stdin.read(), "-"
    path = Path(file)
    if not path.is_file():
        print(f"error: no such file: {path}", file=sys.stderr)
        return None, str(path)
    return path.read_text(encoding="utf-8", errors="replace"), str(path)


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import run_status

    if args.follow:
        from cli.progress import follow_status

        return _run_value(follow_status(settings, args.run_id, interval_s=args.interval, as_json=args.json))
    status = _run_value(run_status(settings, args.run_id))
    if status is None:
        print(f"error: no run {args.run_id!r}", file=sys.stderr)
        return EXIT_FAILED
    data = status.as_dict()
    if args.json:
        _print_json(data)
    else:
        width = max(len(k) for k in data)
        for key, value in data.items():
            print(f"{key:<{width}}  {value if value is not None else '-'}")
    return EXIT_OK


def cmd_runs(settings: Settings, args: argparse.Namespace) -> int:
    from cli.progress import show_runs

    return _run_value(show_runs(settings, state=args.state, limit=args.limit, as_json=args.json))


def cmd_dead_letter(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import dead_letters

    result = _run_value(dead_letters(settings, args.action, args.run, args.reason, args.limit))
    if isinstance(result, int):
        print(json.dumps({"requeued": result}) if args.json else f"requeued {result} item(s)")
    elif args.json:
        _print_json([letter.as_dict() for letter in result])
    else:
        for letter in result:
            fields = (letter.run_id, letter.item_key, letter.error_type, f"attempts={letter.attempts}")
            print("  ".join(str(f) for f in fields), letter.reason, sep="  ")
    return EXIT_OK


def cmd_data_requests(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import data_requests

    rows = _run_value(data_requests(settings, run_id=args.run, attention=args.attention, limit=args.limit))
    if args.json:
        _print_json(rows)
        return EXIT_OK
    for row in rows:
        fields = (row["data_request"], row["state"], row["kind"], f"request_id={row['request_id']}")
        progress = f"files {row['files_done']}/{row['files']}, records {row['records_ingested']}"
        print("  ".join(str(f) for f in fields), progress, row["reason"] or "", sep="  ")
    return EXIT_OK


def cmd_ping(settings: Settings, args: argparse.Namespace) -> int:
    from cli.wiring import ping

    _run_value(ping(settings))
    print("ok: Redis and MongoDB answer")
    return EXIT_OK


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    from api.app import ApiConfigError, check_auth_config, serve

    try:
        check_auth_config(settings, insecure=args.insecure_no_auth)
    except ApiConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    # Re-configured now that the tokens are known to be needed: never logged, even inside an exception.
    configure_logging(
        settings.log_level,
        json=settings.log_json,
        secrets=settings.secrets(),
    )
    return _serve(serve(settings, args.host, args.port, insecure=args.insecure_no_auth), args.host, args.port)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from cli.demo import run_demo

    return _run_value(run_demo(profiles=args.profiles, workers=args.workers, concurrency=args.concurrency))


def _run(coro: Coroutine[Any, Any, Any]) -> int:
    _run_value(coro)
    return EXIT_OK


def _serve(coro: Coroutine[Any, Any, Any], host: str, port: int) -> int:
    """Run a server; an address in use (or an unknown host) is one line, not a traceback."""
    try:
        return _run(coro)
    except OSError as exc:
        failure = listen_error(exc, host, port)
        if failure is None:
            raise
        raise failure from exc


def _pydantic_message(message: str) -> str:
    return message.removeprefix("Value error, ")


def _run_value[T](coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def _via_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--via",
        choices=["auto", "collect", "bulk"],
        default="auto",
        help="auto (default): skip fresh, then bulk when at least BULK_MIN_ITEMS are left, else collect",
    )


DESCRIPTION = """\
Keep a MongoDB mirror of Coresignal's Clean Employee API up to date, at exactly the rate the API
allows, from as many worker processes as you start. Give it employee ids, profile names/URLs or an
ES-DSL search; a run collects each profile once and reports its progress.

first steps:
  employee-sync ping                       check that Redis and MongoDB answer
  employee-sync worker                     start a worker (start as many as you like, on any host)
  employee-sync enqueue ids ids.txt        create a run from employee ids, one per line
                                           (or: enqueue names FILE, enqueue search QUERY.json)
  employee-sync status RUN_ID --follow     watch a run until it finishes
  employee-sync demo                       everything on one machine, with a local simulator"""

EPILOG = """\
settings come from the environment or ./.env: CORESIGNAL_API_KEY (needed by workers), REDIS_URL,
MONGODB_URL, CORESIGNAL_BASE_URL (must end in /cdapi) and the tunables listed in the README.
`employee-sync COMMAND --help` describes one command."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="employee-sync",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    worker = sub.add_parser("worker", help="run one worker process (run as many as you like)")
    worker.add_argument("--concurrency", type=_positive_int, help="jobs in flight in this process")
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    worker.set_defaults(handler=cmd_worker)

    sim = sub.add_parser("simulator", help="run the Clean Employee API simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8010)
    sim.add_argument("--population", type=int)
    sim.add_argument("--seed", type=int)
    sim.add_argument("--api-key", action="append", help="accepted key (repeatable)")
    sim.add_argument("--retry-after-s", type=float, help="send Retry-After on 429")
    sim.add_argument("--credits", type=int, help="starting credit balance (default unlimited)")
    for cls in ("collect", "search", "bulk"):
        sim.add_argument(f"--{cls}-rps", type=int)
    sim.set_defaults(handler=cmd_simulator)

    enqueue = sub.add_parser("enqueue", help="create a run from ids, names/URLs or an ES-DSL search")
    enqueue.add_argument("kind", choices=["ids", "names", "search"])
    enqueue.add_argument("file", help="path, or - for standard input (search: a JSON body)")
    enqueue.add_argument("--max-profiles", type=int, help="search: stop after this many ids")
    enqueue.add_argument("--json", action="store_true")
    _via_arguments(enqueue)
    enqueue.add_argument(
        "--dry-run", action="store_true", help="print the plan; create nothing, spend nothing"
    )
    enqueue.set_defaults(handler=cmd_enqueue)

    plan = sub.add_parser("plan", help="collect or bulk? items, fresh, credits, requests and time per path")
    plan.add_argument("kind", choices=["ids", "names", "search"])
    plan.add_argument("file", help="path, or - for standard input (search: a JSON body)")
    plan.add_argument("--max-profiles", type=int, help="search: stop after this many ids")
    plan.add_argument("--json", action="store_true")
    _via_arguments(plan)
    plan.set_defaults(handler=cmd_plan)

    status = sub.add_parser("status", help="show a run's progress")
    status.add_argument("run_id")
    status.add_argument("--json", action="store_true")
    status.add_argument("--follow", action="store_true", help="live progress until the run stops")
    status.add_argument("--interval", type=float, help="--follow: seconds between readings (TTY 1, else 5)")
    status.set_defaults(handler=cmd_status)

    runs = sub.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--state", help="only runs in this state (running, finished, ...)")
    runs.add_argument("--limit", type=_positive_int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(handler=cmd_runs)

    for action, what in (
        ("pause", "take a run's queued jobs out until it is resumed"),
        ("cancel", "stop a run for good (started jobs finish)"),
    ):
        control = sub.add_parser(action, help=what)
        control.add_argument("run_id")
        control.add_argument("--json", action="store_true")
        control.set_defaults(handler=cmd_pause_or_cancel)  # fmt: skip

    resume = sub.add_parser(
        "resume",
        help="continue a paused run, or rebuild a running/failed one from MongoDB (after a Redis loss)",
    )
    resume.add_argument("run_id")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(handler=cmd_resume)

    dead = sub.add_parser("dead-letter", help="list permanent failures, or put them back to work")
    dead.add_argument("action", choices=["list", "requeue"])
    dead.add_argument("--run")
    dead.add_argument("--reason", help="only entries whose reason contains this text")
    dead.add_argument("--limit", type=_positive_int, default=100)
    dead.add_argument("--json", action="store_true")
    dead.set_defaults(handler=cmd_dead_letter)

    ledger = sub.add_parser("data-requests", help="the bulk data-request ledger (billed requests)")
    ledger.add_argument("--run", help="only this run's data requests")
    ledger.add_argument(
        "--attention", action="store_true", help="only failed, unknown (maybe billed) or stuck submitting"
    )
    ledger.add_argument("--limit", type=int, default=100)
    ledger.add_argument("--json", action="store_true")
    ledger.set_defaults(handler=cmd_data_requests)

    ping = sub.add_parser("ping", help="check that Redis and MongoDB answer (a health check)")
    ping.set_defaults(handler=cmd_ping)

    api = sub.add_parser("api", help="serve the HTTP API (runs, progress, mirrored employees)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    api.add_argument(
        "--insecure-no-auth", action="store_true", help="serve without API_TOKENS (trusted networks only)"
    )
    api.set_defaults(handler=cmd_api)

    from cli.sync_commands import add_parsers as add_sync_parsers

    add_sync_parsers(sub)

    demo = sub.add_parser("demo", help="end-to-end demo on embedded defaults")
    demo.add_argument("--profiles", type=int, default=1000)
    demo.add_argument("--workers", type=int, default=3)
    demo.add_argument("--concurrency", type=int, default=25)
    demo.set_defaults(handler=cmd_demo)

    from cli.webhook_commands import add_commands

    add_commands(sub)  # webhooks, subscriptions, changes
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = build_settings()
    except ValidationError as exc:
        for error in exc.errors():
            # A check across settings has no field of its own: its message names the settings.
            field = ".".join(str(p) for p in error["loc"]).upper()
            where = f"{field}: " if field else ""
            print(f"configuration error: {where}{_pydantic_message(error['msg'])}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(
        settings.log_level,
        json=settings.log_json,
        secrets=settings.secrets(),
    )
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        return handler(settings, args)
    except Exception as exc:  # every failure is one line (a bug: a redacted traceback), never a raw one
        message, code = describe(exc, settings)
        print(message, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
