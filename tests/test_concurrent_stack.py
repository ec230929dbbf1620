"""The whole stack under concurrent use, on SQLite and on Postgres, for at least 60 s.

`tests/stack_load.py` runs it: the realtime server with its signal writer, a
council job and a backtest sweep through `POST /api/jobs`, the demo's council
in a terminal (`aitrader council run`), `aitrader data import` of the shared
file, chat trades and watchlist writes from two clients, all at once; both
cores are kept busy by two spinning processes until every flow has started on
the fresh Prefect home. Then: no "database is locked" anywhere, no 5xx, every
job and the terminal's council completed, no council run left running, and
the paper broker holds exactly the orders that 2xx answers (and the councils)
account for.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.stack_load import run_stack_load

DURATION_S = float(os.environ.get("STACK_LOAD_SECONDS", "60"))


@pytest.mark.timeout(1200)
def test_the_whole_stack_under_concurrent_use_fails_nothing_and_doubles_nothing(
    stack_db: tuple[str, str], tmp_path: Path, shared_daily_file: Path
) -> None:
    backend, url = stack_db
    report = run_stack_load(
        backend,
        url,
        tmp_path / "stack",
        shared_daily_file,
        duration_s=DURATION_S,
        busy_start=backend == "sqlite",  # one busy start-up is the proof; two slow the suite
    )
    print(json.dumps(report.summary(), indent=1))  # the closing note's numbers
    if out := os.environ.get("STACK_LOAD_REPORT"):  # a directory: one report per backend
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{backend}.json").write_text(json.dumps(report.details(), indent=1))
    assert report.seconds >= DURATION_S
    assert report.lock_lines == []
    assert report.server_errors == []
    assert report.client_failures == []
    assert report.import_exit == 0, report.import_output[-2000:]
    assert report.council_exit == 0, report.council_output[-2000:]
    assert "Timed out while attempting to connect" not in report.council_output
    assert len(report.jobs) == 2
    assert report.unfinished_jobs == []
    assert {j["status"] for j in report.jobs.values()} == {"completed"}, report.jobs
    assert report.stuck_runs == []
    assert report.chat_answered > 0
    assert report.chat_trades_answered
    assert report.effects_behind_errors == set()
    assert report.answered_not_sent == set()
