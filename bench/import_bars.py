"""Benchmark: our bar import against pandas `DataFrame.to_sql`, measured in the same run.

The baseline is what most projects do: `to_sql` into the bars table. It
validates nothing and cannot re-import (a second run violates the primary
key). On each database we time:

* our whole import (read + validate + staging + merge + report), first run;
* our re-import of the same file (must report 0 changes);
* the write alone, ours (`upsert_bars`) against `to_sql`, both writing the
  same validated frame into an empty table: the like-for-like ratio.

Usage: python bench/import_bars.py [--rows N] [--postgres-admin URL]
--rows 0 (the default) takes the whole shared file (592,358 rows).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pandas as pd
from sqlalchemy import Engine, create_engine, delete, text
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries.bars import upsert_bars
from models.enums import Timeframe
from models.market import Bar, ImportReport
from services.vendors.bar_file import read_bar_file
from tasks.bar_validation import validate_bars
from tasks.import_bars import import_bar_file

T = TypeVar("T")
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "sp500_daily_2015_2020.csv.gz"
Row = tuple[str, int, float, float, float, float]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=0, help="first N rows; 0 = whole file")
    parser.add_argument(
        "--postgres-admin", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    source = SHARED
    if args.rows:
        source = args.workdir / f"bench_bars_{args.rows}.csv.gz"
        if not source.exists():
            pd.read_csv(SHARED, nrows=args.rows, dtype=str).to_csv(source, index=False)
    print(f"file: {source.name}")
    results: list[Row] = []
    with _sqlite(args.workdir) as engine:
        results.append(("sqlite", *_run(engine, source)))
    with _postgres(args.postgres_admin) as engine:
        results.append(("postgres", *_run(engine, source)))
    print()
    print(
        "| database | rows | import (read+validate+write) | re-import, 0 changes "
        "| write: ours | write: to_sql | speed-up |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for db, rows, full, again, ours, base in results:
        print(
            f"| {db} | {rows:,} | {full:.2f} s | {again:.2f} s | {ours:.2f} s "
            f"| {base:.2f} s | {base / ours:.2f}x |"
        )


def _run(engine: Engine, source: Path) -> tuple[int, float, float, float, float]:
    """Times: full import, re-import, our write alone, to_sql write alone (same frame)."""
    upgrade(engine)
    sessions = make_session_factory(engine)
    full, report = _timed(lambda: _import(sessions, source))
    again, report2 = _timed(lambda: _import(sessions, source))
    assert report2.changes == 0, "re-import must change nothing"

    frame = validate_bars(read_bar_file(source, timeframe=Timeframe.D1), Timeframe.D1).valid
    _clear_bars(sessions)
    ours, _ = _timed(lambda: _write(sessions, frame))
    _clear_bars(sessions)
    rows = frame[["symbol", "ts", "open", "high", "low", "close", "adj_close", "volume"]].copy()
    rows.insert(1, "timeframe", "1d")
    if engine.dialect.name == "sqlite":  # what SQLAlchemy would store; to_sql bypasses our types
        rows["ts"] = rows["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    base, _ = _timed(
        lambda: rows.to_sql("bars", engine, if_exists="append", index=False, chunksize=10_000)
    )
    print(
        f"{engine.dialect.name}: import {full:.2f} s, re-import {again:.2f} s, "
        f"write {ours:.2f} s vs to_sql {base:.2f} s"
    )
    return report.rows_read, full, again, ours, base


def _import(sessions: sessionmaker[Session], source: Path) -> ImportReport:
    with unit_of_work(sessions) as s:
        return import_bar_file(s, source)


def _write(sessions: sessionmaker[Session], frame: pd.DataFrame) -> None:
    with unit_of_work(sessions) as s:
        upsert_bars(s, frame, Timeframe.D1)


def _clear_bars(sessions: sessionmaker[Session]) -> None:
    with unit_of_work(sessions) as s:
        s.execute(delete(Bar))


def _timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@contextmanager
def _sqlite(workdir: Path) -> Iterator[Engine]:
    path = workdir / f"bench_{uuid.uuid4().hex[:8]}.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        yield engine
    finally:
        engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


@contextmanager
def _postgres(admin_url: str) -> Iterator[Engine]:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"aitrader_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
