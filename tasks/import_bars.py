"""Import a bar file: read, validate, write, and account for every row.

Two ways to write, the same rows and the same report:

* `import_bar_file(session, ...)` writes inside the caller's transaction and
  never commits: the file lands whole or not at all. For small files and for
  callers that own a unit of work (tests, the demo's sample).
* `import_bar_file_beside_writers(engine, ...)`, what `aitrader data import`
  runs: the rows are staged in a temporary table outside any write lock,
  then merged `SYMBOLS_PER_MERGE` symbols at a time, each merge its own short
  transaction (docs/decisions/0012). Other writers (the realtime server, a
  council, chat trades) wait a fraction of a second behind a merge, never
  the whole import. A symbol's history lands whole or not at all; an import
  that stops half-way leaves whole symbols behind, and re-running it
  finishes the rest (the merge is an idempotent upsert).

Re-importing the same file changes nothing and says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from db.engine import read_transaction, write_transaction
from db.queries.bars import UpsertCounts, merge_staged_bars, stage_bars, upsert_bars
from db.queries.instruments import ensure_instruments
from models.enums import Timeframe
from models.errors import DataFileError
from models.market import ImportReport
from models.ops import AuditEvent
from services.vendors.bar_file import read_bar_file
from tasks.bar_validation import ConflictRule, ValidatedBars, validate_bars

logger = logging.getLogger(__name__)

Stage = Callable[[str, int, int], None]
"""Progress callback: (stage name, done, total)."""


SYMBOLS_PER_MERGE = 25
"""About 30k daily bars of five years: a merge holds the SQLite write lock ~0.3 s."""


def import_bar_file(
    session: Session,
    path: Path,
    *,
    timeframe: Timeframe = Timeframe.D1,
    symbol_column: str = "symbol",
    symbol: str | None = None,
    tz: str = "UTC",
    on_conflict: ConflictRule = ConflictRule.REJECT,
    dry_run: bool = False,
    progress: Stage | None = None,
) -> ImportReport:
    """Load `path` into `bars` in the caller's transaction; return the report. With
    `dry_run` nothing is written."""
    started = time.perf_counter()
    step = progress or _no_progress
    frame, checked = _read_and_check(path, timeframe, symbol_column, symbol, tz, on_conflict, step)
    valid = checked.valid
    counts = UpsertCounts(inserted=0, updated=0, unchanged=0)
    created = 0
    if not dry_run and len(valid):
        created = ensure_instruments(session, valid["symbol"].unique().tolist())
        counts = upsert_bars(
            session, valid, timeframe, progress=lambda done, total: step("writing", done, total)
        )
    report = _report(path, timeframe, frame, checked, counts, created, started)
    if not dry_run:
        session.add(_audit(path, report))
    _log(report, dry_run)
    return report


def import_bar_file_beside_writers(
    engine: Engine,
    path: Path,
    *,
    timeframe: Timeframe = Timeframe.D1,
    symbol_column: str = "symbol",
    symbol: str | None = None,
    tz: str = "UTC",
    on_conflict: ConflictRule = ConflictRule.REJECT,
    dry_run: bool = False,
    progress: Stage | None = None,
) -> ImportReport:
    """Load `path` into `bars` in short transactions (see the module's docstring). With
    `dry_run` the file is read and checked, and nothing is written."""
    started = time.perf_counter()
    step = progress or _no_progress
    frame, checked = _read_and_check(path, timeframe, symbol_column, symbol, tz, on_conflict, step)
    if dry_run:
        report = _report(path, timeframe, frame, checked, UpsertCounts(0, 0, 0), 0, started)
        _log(report, dry_run=True)
        return report
    valid = checked.valid
    symbols = sorted(valid["symbol"].unique().tolist())
    counts = UpsertCounts(inserted=0, updated=0, unchanged=0)
    created = 0
    with engine.connect() as conn:
        if len(valid):
            with read_transaction(conn):  # temporary tables only: no write lock
                stage = stage_bars(
                    conn, valid, timeframe, lambda done, total: step("staging", done, total)
                )
            try:
                with write_transaction(conn):
                    created = ensure_instruments(conn, symbols)
                batches = [
                    symbols[i : i + SYMBOLS_PER_MERGE]
                    for i in range(0, len(symbols), SYMBOLS_PER_MERGE)
                ]
                for done, batch in enumerate(batches, 1):
                    with write_transaction(conn):
                        merged = merge_staged_bars(conn, stage, batch)
                    counts = UpsertCounts(
                        inserted=counts.inserted + merged.inserted,
                        updated=counts.updated + merged.updated,
                        unchanged=counts.unchanged + merged.unchanged,
                    )
                    step("writing", done, len(batches))
            finally:  # the connection goes back to the pool: leave no staging table on it
                if conn.in_transaction():
                    conn.rollback()
                with read_transaction(conn):
                    stage.drop(conn)
        report = _report(path, timeframe, frame, checked, counts, created, started)
        with write_transaction(conn):
            conn.execute(insert(AuditEvent).values(**_audit_values(path, report)))
    _log(report, dry_run=False)
    return report


def _no_progress(_stage: str, _done: int, _total: int) -> None:
    return None


def _read_and_check(
    path: Path,
    timeframe: Timeframe,
    symbol_column: str,
    symbol: str | None,
    tz: str,
    on_conflict: ConflictRule,
    step: Stage,
) -> tuple[pd.DataFrame, ValidatedBars]:
    if timeframe is Timeframe.TICK:
        raise DataFileError(f"{path}: 'tick' is not a bar interval; give the file's bar timeframe")
    step("reading", 0, 1)
    frame = read_bar_file(
        path, timeframe=timeframe, symbol_column=symbol_column, symbol=symbol, tz=tz
    )
    step("validating", 0, 1)
    return frame, validate_bars(frame, timeframe, on_conflict)


def _report(
    path: Path,
    timeframe: Timeframe,
    frame: pd.DataFrame,
    checked: ValidatedBars,
    counts: UpsertCounts,
    created: int,
    started: float,
) -> ImportReport:
    return ImportReport(
        path=str(path),
        timeframe=timeframe,
        rows_read=len(frame),
        rows_valid=len(checked.valid),
        rejected=checked.rejected,
        examples=checked.examples,
        duplicates_collapsed=checked.duplicates_collapsed,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        symbols=int(checked.valid["symbol"].nunique()),
        instruments_created=created,
        seconds=round(time.perf_counter() - started, 3),
    )


def _audit_values(path: Path, report: ImportReport) -> dict[str, Any]:
    return {
        "actor": "aitrader data import",
        "event": "bars.imported",
        "entity_type": "bar_file",
        "entity_id": path.name[:64],
        "payload": report.model_dump(mode="json", exclude={"examples"}),
    }


def _audit(path: Path, report: ImportReport) -> AuditEvent:
    return AuditEvent(**_audit_values(path, report))


def _log(report: ImportReport, dry_run: bool) -> None:
    logger.info(
        "bars.imported",
        extra={
            "path": report.path,
            "rows_read": report.rows_read,
            "rejected": report.rows_rejected,
            "inserted": report.inserted,
            "updated": report.updated,
            "seconds": report.seconds,
            "dry_run": dry_run,
        },
    )
