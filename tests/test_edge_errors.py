"""Issue 13 item 6: every command, tried as a new user would, fails with one clear line, no traceback,
and never a password (review #13 in console mode too). Real processes where the process is the point
(a worker that cannot start, a pipe, a port in use, the unreachable-store sweeps); the refusals that
happen before anything is opened (help, settings, arguments, unreadable files) run `cli.main.main` in
this process (tests/cli_support.py), which prints and exits the same way without ~2 s of imports."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from devstack import processes as svc
from tests.cli_support import run_cli_in_process
from tests.conftest import TEST_API_KEY
from tests.fleet_support import run_cli

PASSWORD = "s3cretpw"
RUN = "0" * 32
SEARCH = '{"query": {"match_all": {}}}'

# Every command that opens the stores, with what it needs to get that far.
STORE_COMMANDS: list[tuple[str, ...]] = [
    ("ping",),
    ("worker", "--burst"),
    ("worker",),
    ("enqueue", "ids", "-"),
    ("enqueue", "names", "-"),
    ("enqueue", "search", "-"),
    ("status", RUN),
    ("status", RUN, "--follow"),
    ("runs",),
    ("pause", RUN),
    ("resume", RUN),
    ("cancel", RUN),
    ("dead-letter", "list"),
    ("dead-letter", "requeue"),
    ("api", "--insecure-no-auth", "--port", "0"),
]
STDIN = {"ids": "10000\n", "names": "john-doe\n", "search": SEARCH}


def _stdin(command: tuple[str, ...]) -> str | None:
    return STDIN[command[1]] if command[0] == "enqueue" else None


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def _assert_clean(result: subprocess.CompletedProcess[str], *secrets: str) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    for secret in (PASSWORD, TEST_API_KEY, *secrets):
        assert secret not in output, output


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A loopback port where nothing listens (connections are refused at once)."""
    yield svc.free_port()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.slow
def test_help_opens_with_what_the_tool_does_and_the_first_commands(settings: Settings) -> None:
    result = run_cli_in_process(settings, "--help")
    assert result.returncode == 0
    text = result.stdout
    assert "composition root" not in text
    opening = text.split("\n\n")[1]  # right after the usage line
    assert opening.startswith("Keep a MongoDB mirror of Coresignal's Clean Employee API up to date")
    first_steps = text[text.index("first steps:") : text.index("options:")]
    for command in ("employee-sync ping", "employee-sync worker", "employee-sync enqueue ids"):
        assert command in first_steps
    assert "CORESIGNAL_API_KEY" in text


@pytest.mark.slow
def test_a_worker_without_an_api_key_is_a_configuration_error(settings: Settings) -> None:
    result = run_cli_in_process(settings, "worker", CORESIGNAL_API_KEY="")
    assert result.returncode == 2
    assert _lines(result) == ["configuration error: CORESIGNAL_API_KEY is not set"]
    _assert_clean(result)


@pytest.mark.slow  # one process per command
@pytest.mark.parametrize("command", STORE_COMMANDS, ids=" ".join)
def test_an_unreachable_redis_is_one_line_naming_its_url(
    settings: Settings, dead_port: int, command: tuple[str, ...]
) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{dead_port}/0"
    result = run_cli(settings, *command, stdin=_stdin(command), REDIS_URL=url, LOG_JSON="false")
    assert result.returncode == 1, result.stderr
    expected = f"error: Redis at redis://:***@127.0.0.1:{dead_port}/0 did not answer: ping: ConnectionError"
    assert _lines(result)[-1].startswith(expected), result.stderr
    assert "Connect call failed" in _lines(result)[-1] or "refused" in _lines(result)[-1].lower()
    _assert_clean(result)


@pytest.mark.slow  # one process per command, each waiting out MongoDB's 5 s server selection
@pytest.mark.parametrize(
    "command", [("ping",), ("worker",), ("enqueue", "ids", "-"), ("api", "--insecure-no-auth", "--port", "0")]
)
def test_an_unreachable_mongodb_is_one_line_naming_its_url_and_why(
    settings: Settings, dead_port: int, command: tuple[str, ...]
) -> None:
    url = f"mongodb://app:{PASSWORD}@127.0.0.1:{dead_port}"
    result = run_cli(settings, *command, stdin=_stdin(command), MONGODB_URL=url, LOG_JSON="false")
    assert result.returncode == 1, result.stderr
    line = _lines(result)[-1]
    assert line == (
        f"error: MongoDB at mongodb://app:***@127.0.0.1:{dead_port} did not answer: ping: "
        f"ServerSelectionTimeoutError: 127.0.0.1:{dead_port}: [Errno 111] Connect call failed "
        f"('127.0.0.1', {dead_port})"
    ), result.stderr
    assert "Topology Description" not in result.stderr
    _assert_clean(result)


@pytest.mark.slow
def test_a_console_mode_worker_with_passworded_unreachable_stores_prints_no_password(
    settings: Settings, dead_port: int
) -> None:
    """Review #13 as a user meets it: a terminal-style (LOG_JSON=false) worker that cannot start."""
    for env in (
        {"REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:{dead_port}/0"},
        {"MONGODB_URL": f"mongodb://app:{PASSWORD}@127.0.0.1:{dead_port}"},
    ):
        result = run_cli(settings, "worker", LOG_JSON="false", LOG_LEVEL="DEBUG", **env)
        assert result.returncode == 1, result.stderr
        assert "***@127.0.0.1" in result.stderr
        _assert_clean(result)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOG_LEVEL": "LOUD"}, "configuration error: LOG_LEVEL: LOG_LEVEL must be one of DEBUG, INFO"),
        ({"REDIS_URL": "localhost:6379"}, "configuration error: REDIS_URL: REDIS_URL must start with one of"),
        ({"REDIS_URL": f"tcp://:{PASSWORD}@cache:1"}, "configuration error: REDIS_URL: REDIS_URL must start"),
        (
            {"REDIS_URL": "redis://127.0.0.1:port/0"},
            "configuration error: REDIS_URL: REDIS_URL has an invalid",
        ),
        ({"MONGODB_URL": "http://db:27017"}, "configuration error: MONGODB_URL: MONGODB_URL must start with"),
        (
            {"MONGODB_URL": f"mongodb://app:{PASSWORD}@"},
            "configuration error: MONGODB_URL: MONGODB_URL names no",
        ),
        ({"MONGODB_URL": f"mongodb://a:b:{PASSWORD}@db"}, "configuration error: MONGODB_URL is not usable:"),
        ({"CORESIGNAL_BASE_URL": "http://127.0.0.1:8010"}, "configuration error: CORESIGNAL_BASE_URL: "),
        ({"COLLECT_RPS": "fast"}, "configuration error: COLLECT_RPS: Input should be a valid number"),
        ({"WORKER_CONCURRENCY": "0"}, "configuration error: WORKER_CONCURRENCY: Input should be greater"),
        # A check across two settings: no empty field name before the message.
        (
            {"LIMITER_MARGIN_START": "0.2"},
            "configuration error: LIMITER_MARGIN_START must lie between LIMITER_MARGIN_FLOOR and",
        ),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else "",
)
@pytest.mark.slow
def test_invalid_settings_are_configuration_errors(
    settings: Settings, env: dict[str, str], expected: str
) -> None:
    result = run_cli_in_process(settings, "ping", **env)
    assert result.returncode == 2, result.stderr
    assert _lines(result)[0].startswith(expected), result.stderr
    _assert_clean(result)


@pytest.mark.parametrize("kind", ["ids", "names", "search"])
@pytest.mark.slow
def test_unreadable_inputs_are_usage_errors(settings: Settings, tmp_path: Path, kind: str) -> None:
    cases = {
        str(tmp_path / "missing.txt"): f"error: no such file: {tmp_path / 'missing.txt'}",
        str(tmp_path): f"error: {tmp_path} is a directory, not a file",
        "/proc/self/mem": "error: cannot read /proc/self/mem: Input/output error",  # opens, then EIO
    }
    for path, expected in cases.items():
        result = run_cli_in_process(settings, "enqueue", kind, path)
        assert result.returncode == 2, result.stderr
        assert _lines(result) == [expected]
        _assert_clean(result)
    runs = run_cli_in_process(settings, "runs", "--json")
    assert runs.returncode == 0 and runs.stdout.strip() == "[]"  # no run was created for any of them


@pytest.mark.slow
def test_an_input_from_a_pipe_is_accepted(settings: Settings, tmp_path: Path) -> None:
    fifo = tmp_path / "ids.fifo"  # what `enqueue ids <(make-ids)` hands over: not a regular file
    os.mkfifo(fifo)
    writer = subprocess.Popen(["sh", "-c", f"printf '10000\\n10007\\n' > {fifo}"])
    try:
        result = run_cli(settings, "enqueue", "ids", str(fifo))
    finally:
        writer.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "accepted 2, rejected 0" in result.stderr


@pytest.mark.parametrize("command", [("api", "--insecure-no-auth"), ("simulator",)])
@pytest.mark.slow
def test_a_port_in_use_is_one_line(settings: Settings, busy_port: int, command: tuple[str, ...]) -> None:
    result = run_cli(settings, *command, "--host", "127.0.0.1", "--port", str(busy_port))
    assert result.returncode == 1, result.stderr
    assert _lines(result)[-1] == f"error: cannot listen on 127.0.0.1:{busy_port}: Address already in use"
    _assert_clean(result)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("simulator", "--population", "-5"),
            "error: --population: Input should be greater than or equal to 0",
        ),
        (("worker", "--concurrency", "0"), "argument --concurrency: must be at least 1, got 0"),
        (("dead-letter", "list", "--limit", "0"), "argument --limit: must be at least 1, got 0"),
        (("runs", "--limit", "many"), "argument --limit: not a whole number: 'many'"),
        (("status", RUN, "--follow", "--interval", "0"), "error: --interval must be positive"),
        (("enqueue", "search", "-"), "error: search body is not valid JSON: line 1 column 1"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
@pytest.mark.slow
def test_bad_arguments_say_which(settings: Settings, args: tuple[str, ...], expected: str) -> None:
    result = run_cli_in_process(settings, *args, stdin="not json" if args[0] == "enqueue" else None)
    assert result.returncode in (1, 2), result.stderr
    assert expected in _lines(result)[-1], result.stderr
    _assert_clean(result)
