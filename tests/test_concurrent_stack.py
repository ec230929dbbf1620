"""The whole stack under concurrent use, on SQLite and on Postgres, for at least 60 s.

`tests/stack_load.py` runs it: the realtime server with its signal writer, a
council job and a backtest sweep through `POST /api/jobs`, `aitrader data
import` of the shared file, chat trades and watchlist writes from two
clients, all at once. Then: no "database is locked" anywhere, no 5xx, every
job ended `completed` or `failed` with a cause, no council run left running,
and the paper broker holds exactly the orders that 2xx answers (and the
council job) account for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from tests.conftest import SAMPLE_DATA, create_postgres_database, drop_postgres_database
from tests.stack_load import run_stack_load

DURATION_S = float(os.environ.get("STACK_LOAD_SECONDS", "60"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def load_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A migrated database holding the sample bars, as `make demo` leaves one."""
    from tasks.import_bars import import_bar_file

    admin: Engine | None = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/stack.db"
    else:
        admin = request.getfixturevalue("postgres_admin")
        url = create_postgres_database(admin)
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(make_session_factory(engine)) as session:
        import_bar_file(session, SAMPLE_DATA / "sp500_daily_sample.csv.gz")
    engine.dispose()
    yield request.param, url
    if admin is not None:
        drop_postgres_database(admin, url)


@pytest.mark.timeout(1200)
def test_the_whole_stack_under_concurrent_use_fails_nothing_and_doubles_nothing(
    load_db: tuple[str, str], tmp_path: Path, shared_daily_file: Path
) -> None:
    backend, url = load_db
    report = run_stack_load(
        backend, url, tmp_path / "stack", shared_daily_file, duration_s=DURATION_S
    )
    print(json.dumps(report.summary(), indent=1))  # the closing note's numbers
    if out := os.environ.get("STACK_LOAD_REPORT"):
        Path(out).write_text(json.dumps(report.details(), indent=1))
    assert report.seconds >= DURATION_S
    assert report.lock_lines == []
    assert report.server_errors == []
    assert report.client_failures == []
    assert report.import_exit == 0, report.import_output[-2000:]
    assert len(report.jobs) == 2
    assert report.unfinished_jobs == []
    assert {j["status"] for j in report.jobs.values()} == {"completed"}, report.jobs
    assert report.stuck_runs == []
    assert report.chat_answered > 0
    assert report.chat_trades_answered
    assert report.effects_behind_errors == set()
    assert report.answered_not_sent == set()
