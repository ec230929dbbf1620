"""Import a bar file: read, validate, write, and account for every row.

One file is one transaction: this function writes inside the caller's
session and never commits, so a failure anywhere leaves the database as it
was (the CLI commits only after the report is complete). Re-importing the
same file is an upsert that changes nothing and says so.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from db.queries.bars import upsert_bars
from db.queries.instruments import ensure_instruments
from models.enums import Timeframe
from models.errors import DataFileError
from models.market import ImportReport
from models.ops import AuditEvent
from services.vendors.bar_file import read_bar_file
from tasks.bar_validation import ConflictRule, validate_bars

logger = logging.getLogger(__name__)

Stage = Callable[[str, int, int], None]
"""Progress callback: (stage name, done, total)."""


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
    """Load `path` into `bars`; return the report. With `dry_run` nothing is written."""
    if timeframe is Timeframe.TICK:
        raise DataFileError(f"{path}: 'tick' is not a bar interval; give the file's bar timeframe")
    started = time.perf_counter()
    step = progress or (lambda _stage, _done, _total: None)
    step("reading", 0, 1)
    frame = read_bar_file(
        path, timeframe=timeframe, symbol_column=symbol_column, symbol=symbol, tz=tz
    )
    step("validating", 0, 1)
    checked = validate_bars(frame, timeframe, on_conflict)
    valid = checked.valid
    symbols = valid["symbol"].unique().tolist()
    created = inserted = updated = unchanged = 0
    if not dry_run and len(valid):
        created = ensure_instruments(session, symbols)
        counts = upsert_bars(
            session, valid, timeframe, progress=lambda done, total: step("writing", done, total)
        )
        inserted, updated, unchanged = counts.inserted, counts.updated, counts.unchanged
    report = ImportReport(
        path=str(path),
        timeframe=timeframe,
        rows_read=len(frame),
        rows_valid=len(valid),
        rejected=checked.rejected,
        examples=checked.examples,
        duplicates_collapsed=checked.duplicates_collapsed,
        inserted=inserted,
        updated=updated,
        unchanged=unchanged,
        symbols=len(symbols),
        instruments_created=created,
        seconds=round(time.perf_counter() - started, 3),
    )
    if not dry_run:
        session.add(
            AuditEvent(
                actor="aitrader data import",
                event="bars.imported",
                entity_type="bar_file",
                entity_id=path.name[:64],
                payload=report.model_dump(mode="json", exclude={"examples"}),
            )
        )
    logger.info(
        "bars.imported",
        extra={
            "path": str(path),
            "rows_read": report.rows_read,
            "rejected": report.rows_rejected,
            "inserted": inserted,
            "updated": updated,
            "seconds": report.seconds,
            "dry_run": dry_run,
        },
    )
    return report
