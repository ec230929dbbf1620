"""Sum the suite's recorded times per module: `python -m tests.times DIR [DIR_AFTER]`.

DIR holds the `times.jsonl` a run with TEST_TIMES_DIR=DIR wrote (see conftest): per test
phase, its wall seconds and (where recorded) the CPU seconds of the worker and of the
processes it started and waited for. With two directories the table compares them,
module by module, as issue 16 asks. Wall seconds are summed over workers: on a busy
machine they include waiting for a core; CPU seconds say what a module costs."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def per_module(where: Path) -> dict[str, tuple[float, float]]:
    """Module -> (wall seconds, CPU seconds), each summed over its tests' phases."""
    wall: dict[str, float] = defaultdict(float)
    cpu: dict[str, float] = defaultdict(float)
    for line in (where / "times.jsonl").read_text().splitlines():
        record = json.loads(line)
        module = record["id"].split("::", 1)[0]
        wall[module] += record["s"]
        cpu[module] += record.get("cpu") or 0.0
    return {m: (wall[m], cpu[m]) for m in wall}


def _cells(times: tuple[float, float] | None) -> str:
    if times is None:
        return " 0.0 | 0.0 |"
    return f" {times[0]:.1f} | {times[1]:.1f} |"


def _total(rows: dict[str, tuple[float, float]]) -> tuple[float, float]:
    return sum(w for w, _ in rows.values()), sum(c for _, c in rows.values())


def main(argv: list[str]) -> None:
    before = per_module(Path(argv[0]))
    after = per_module(Path(argv[1])) if len(argv) > 1 else None
    modules = sorted(before, key=lambda m: -before[m][0])
    if after is None:
        head = "| module | wall s | CPU s |\n|---|---:|---:|"
        rows = [f"| {m} |{_cells(before[m])}" for m in modules]
        total = f"| total |{_cells(_total(before))}"
    else:
        modules += sorted(set(after) - set(before))
        head = (
            "| module | before wall s | before CPU s | after wall s | after CPU s |\n"
            "|---|---:|---:|---:|---:|"
        )
        rows = [f"| {m} |{_cells(before.get(m))}{_cells(after.get(m))}" for m in modules]
        total = f"| total |{_cells(_total(before))}{_cells(_total(after))}"
    sys.stdout.write("\n".join([head, *rows, total]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
