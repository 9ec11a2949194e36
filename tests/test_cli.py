"""The `employee-sync` command line. Piping a list on stdin runs a real process, as a user runs it;
what commands decide and print runs `cli.main.main` in this process (tests/cli_support.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import Settings
from tests.cli_support import run_cli_in_process
from tests.fleet_support import run_cli


@pytest.mark.slow
def test_enqueue_names_reports_each_bad_line_and_keeps_the_good_ones(
    settings: Settings, tmp_path: Path
) -> None:
    names = tmp_path / "names.txt"
    names.write_text(
        "# my list\njohn-doe\nnot a name!\nhttps://www.linkedin.com/in/jane-roe/\n\nhttps://x.com/in/a\n"
    )

    result = run_cli_in_process(settings, "enqueue", "names", str(names))

    assert result.returncode == 3, result.stderr  # created, but some lines were rejected
    run_id = result.stdout.strip()
    assert len(run_id) == 32
    assert "rejected line 3:" in result.stderr and "'not a name!'" in result.stderr
    assert "rejected line 6: not a linkedin.com profile URL" in result.stderr
    assert "accepted 2, rejected 2" in result.stderr

    status = run_cli_in_process(settings, "status", run_id, "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert (data["accepted"], data["rejected"], data["queued"], data["state"]) == (2, 2, 2, "running")


@pytest.mark.slow
def test_enqueue_ids_from_stdin_as_json(settings: Settings) -> None:
    result = run_cli(settings, "enqueue", "ids", "-", "--json", stdin=b"10000\n10007\n-1\n10000\n")
    data = json.loads(result.stdout)
    assert result.returncode == 3
    assert (data["accepted"], data["rejected"], data["duplicates"]) == (2, 1, 1)
    assert data["rejected_lines"] == [
        {"line": 3, "value": "-1", "reason": "not a positive integer employee id"}
    ]


@pytest.mark.slow
def test_a_missing_file_is_a_usage_error(settings: Settings) -> None:
    result = run_cli_in_process(settings, "enqueue", "ids", "/nonexistent/ids.txt")
    assert result.returncode == 2
    assert "no such file: /nonexistent/ids.txt" in result.stderr


@pytest.mark.slow
def test_a_plain_http_upstream_is_refused_before_anything_runs(settings: Settings) -> None:
    result = run_cli_in_process(
        settings, "status", "whatever", CORESIGNAL_BASE_URL="http://api.coresignal.com/cdapi"
    )
    assert result.returncode == 2
    assert "CORESIGNAL_BASE_URL" in result.stderr and "https" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_an_unknown_run_is_reported(settings: Settings) -> None:
    result = run_cli_in_process(settings, "status", "no-such-run")
    assert result.returncode == 1
    assert "no run 'no-such-run'" in result.stderr


@pytest.mark.slow
def test_pause_and_cancel_from_the_command_line(settings: Settings, tmp_path: Path) -> None:
    run_id = run_cli_in_process(settings, "enqueue", "ids", "-", stdin=b"10000\n10007\n").stdout.strip()
    paused = run_cli_in_process(settings, "pause", run_id, "--json")
    assert paused.returncode == 0 and json.loads(paused.stdout)["state"] == "paused"
    again = run_cli_in_process(settings, "pause", run_id)
    assert again.returncode == 1 and "is paused" in again.stderr
    cancelled = run_cli_in_process(settings, "cancel", run_id)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"run {run_id} is cancelled"
