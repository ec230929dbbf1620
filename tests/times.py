"""Sum the suite's recorded times per module: `python -m tests.times DIR [DIR_AFTER]`.

DIR holds the `times.jsonl` a run with TEST_TIMES_DIR=DIR wrote (see conftest). With
two directories the table compares them, module by module, as issue 16 asks."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def per_module(where: Path) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for line in (where / "times.jsonl").read_text().splitlines():
        record = json.loads(line)
        totals[record["id"].split("::", 1)[0]] += record["s"]
    return dict(totals)


def main(argv: list[str]) -> None:
    before = per_module(Path(argv[0]))
    after = per_module(Path(argv[1])) if len(argv) > 1 else None
    modules = sorted(before, key=lambda m: -before[m])
    if after is None:
        rows = [f"| {m} | {before[m]:.1f} |" for m in modules]
        head = "| module | seconds (sum over workers) |\n|---|---:|"
        total = f"| total | {sum(before.values()):.1f} |"
    else:
        modules += sorted(set(after) - set(before))
        rows = [f"| {m} | {before.get(m, 0):.1f} | {after.get(m, 0):.1f} |" for m in modules]
        head = "| module | before (s) | after (s) |\n|---|---:|---:|"
        total = f"| total | {sum(before.values()):.1f} | {sum(after.values()):.1f} |"
    sys.stdout.write("\n".join([head, *rows, total]) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
