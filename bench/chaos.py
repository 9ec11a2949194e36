"""The reliability table: runs the chaos suite (tests/chaos) and prints one row per scenario.

    uv run python -m bench chaos [--repeat N] [pytest args...]

Each scenario test appends a row (profiles, lost, duplicated, recovery time, upstream requests per
profile) to a JSON-lines file named by CHAOS_REPORT; this collects them. A failing test fails this.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    repeat = 1
    if argv[:1] == ["--repeat"]:
        repeat, argv = int(argv[1]), argv[2:]
    report = Path(tempfile.mkdtemp(prefix="chaos-")) / "rows.jsonl"
    for _ in range(repeat):
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/chaos", "-q", *argv],
            env={**os.environ, "CHAOS_REPORT": str(report)},
            check=False,
        )
        if result.returncode != 0:
            return result.returncode
    print(_table([json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []))
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    by_scenario: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_scenario[row["scenario"]].append(row)
    lines = [
        "| scenario | runs | profiles | lost | duplicated | recovery time (s, worst) "
        "| upstream requests per profile (worst) |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, runs in by_scenario.items():
        recovery = [r["recovery_s"] for r in runs if r.get("recovery_s") is not None]
        lines.append(
            f"| {scenario} | {len(runs)} | {runs[0]['profiles']} | {sum(r['lost'] for r in runs)} "
            f"| {sum(r['duplicated'] for r in runs)} | {max(recovery) if recovery else '-'} "
            f"| {max(r['upstream_per_profile'] for r in runs)} |"
        )
    return "\n".join(lines)
