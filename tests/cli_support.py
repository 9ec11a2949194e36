"""`employee-sync ARGS` through `cli.main.main` in the test's own process.

For tests whose point is what a command decides and prints (argument handling, error lines, exit
codes, output formats): it skips the ~2 s a new interpreter spends importing. Tests whose point is
the real process (signals, a pipe on stdin, the console script) keep `tests.fleet_support.run_cli`.
The result has run_cli's shape, and the command sees the same environment run_cli gives a process.
"""

from __future__ import annotations

import gc
import io
import logging
import subprocess
import sys

import pytest
import structlog

from cli.main import main
from config import Settings
from tests.conftest import TEST_API_KEY


def run_cli_in_process(
    settings: Settings, *args: str, stdin: str | bytes | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`employee-sync ARGS` on the test's Redis and database, stdout and stderr captured.

    argparse's exits become the exit code; the logging set-up the command makes is undone after it."""
    environment = {
        "CORESIGNAL_API_KEY": TEST_API_KEY,
        "REDIS_URL": settings.redis_url,
        "MONGODB_URL": settings.mongodb_url,
        "MONGODB_DATABASE": settings.mongodb_database,
        **env,
    }
    raw = stdin.encode() if isinstance(stdin, str) else (stdin or b"")
    out, err = io.StringIO(), io.StringIO()
    root, arq_logger = logging.getLogger(), logging.getLogger("arq.worker")
    saved = (root.handlers[:], root.level, arq_logger.level, structlog.get_config())
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            # A client the command left open would otherwise be collected during some later test,
            # whose failure would then name the wrong test: collect now, so it fails this one.
            gc.collect()
            handlers, level, arq_level, config = saved
            root.handlers[:] = handlers
            root.setLevel(level)
            arq_logger.setLevel(arq_level)
            structlog.reset_defaults()
            structlog.configure(**config)
    return subprocess.CompletedProcess(["employee-sync", *args], code, out.getvalue(), err.getvalue())
