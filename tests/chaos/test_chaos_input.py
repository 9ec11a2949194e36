"""Bad input: clear errors with line numbers, nothing accepted lost, memory bounded (the file is streamed)."""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

import pytest

from config import Settings
from jobs.inputs import MAX_LINE_BYTES
from tests.fleet_support import run_cli
from worker import keys
from worker.runtime import Services

pytestmark = pytest.mark.slow


def cli(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(settings, *args, stdin=stdin, timeout_s=300)


async def test_garbage_binary_and_overlong_lines_are_reported_and_the_good_lines_kept(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    names = tmp_path / "names.bin"
    names.write_bytes(
        b"john-doe\n\x00\x01\x02\xff\xfe binary\n"
        + b"a" * (MAX_LINE_BYTES * 50)
        + b"\n\t  \njane-roe\nhttps://www.linkedin.com/in/" + "jürgen".encode() + b"/\n"
        + b"DROP TABLE employees;\n" + b"x" * 101 + b"\n"
    )  # fmt: skip
    result = cli(settings, "enqueue", "names", str(names), "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 3
    assert data["accepted"] == 3
    assert [(r["line"], r["reason"].split(" ")[0]) for r in data["rejected_lines"]] == [
        (2, "line"),  # not valid UTF-8
        (3, "line"),  # longer than the limit
        (7, "not"),  # SQL-looking junk is just not a name
        (8, "not"),  # 101 characters
    ]
    status = cli(settings, "status", data["run_id"], "--json")
    assert json.loads(status.stdout)["accepted"] == 3


async def test_a_million_line_file_is_streamed_with_bounded_memory(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    big = tmp_path / "million.txt"
    with big.open("w") as out:
        for n in range(1_000_000):
            out.write(f"{10_000 + 7 * n}\n" if n % 10 == 0 else f"garbage line {n}\n")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = cli(settings, "enqueue", "ids", str(big))
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert result.returncode == 3
    assert "accepted 100000, rejected 900000" in result.stderr
    assert result.stderr.count("rejected line ") == 1000  # the first thousand, then only the count
    assert max(peak_kib, before) < 400 * 1024, f"peak RSS {peak_kib} KiB"
    assert await services.queue.depth(keys.JOB_QUEUE) <= settings.queue_window


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"query": {"term": ', "not valid JSON"),
        ('["not", "an", "object"]', "JSON object"),
        (json.dumps({"query": {"terms": {"full_name": ["x" * 100] * 200}}}), "at most 15000"),
        (json.dumps({"query": {"bool": {"should": [{"term": {"id": i}} for i in range(1100)]}}}), "clauses"),
    ],
)
async def test_malformed_or_oversized_queries_are_refused_before_any_run_exists(
    settings: Settings, services: Services, tmp_path: Path, body: str, message: str
) -> None:
    query = tmp_path / "query.json"
    query.write_text(body)
    result = cli(settings, "enqueue", "search", str(query))
    assert result.returncode == 1
    assert message in result.stderr and "Traceback" not in result.stderr
    assert await services.store.runs.count_all() == 0


async def test_invalid_ids_are_rejected_by_line(settings: Settings, services: Services) -> None:
    result = cli(
        settings, "enqueue", "ids", "-", "--json", stdin="-1\nabc\n99999999999999999999\n1.5\n0x10\n42\n"
    )
    data = json.loads(result.stdout)
    assert data["accepted"] == 1
    assert [r["line"] for r in data["rejected_lines"]] == [1, 2, 3, 4, 5]
