"""Which bars are stored: per symbol, and the day range; the cheap reads refusals need.

Apart from `db.queries.bars` (pandas, 0.3 s to import) so that a command can
say "no bars for FOO" or "outside the stored range" before anything heavy loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.enums import Timeframe
from models.market import Bar, SymbolCoverage


def bar_coverage(
    session: Session, symbols: Sequence[str] | None = None, timeframe: Timeframe | None = None
) -> list[SymbolCoverage]:
    """First and last bar and bar count per symbol and timeframe."""
    stmt = (
        select(
            Bar.symbol,
            Bar.timeframe,
            func.min(Bar.ts).label("first"),
            func.max(Bar.ts).label("last"),
            func.count().label("bars"),
        )
        .group_by(Bar.symbol, Bar.timeframe)
        .order_by(Bar.symbol, Bar.timeframe)
    )
    if symbols:
        stmt = stmt.where(Bar.symbol.in_([s.upper() for s in symbols]))
    if timeframe is not None:
        stmt = stmt.where(Bar.timeframe == timeframe)
    return [SymbolCoverage.model_validate(row._mapping) for row in session.execute(stmt)]


def daily_range(session: Session, symbols: Sequence[str] | None = None) -> tuple[date, date] | None:
    """The first and last day with a stored daily bar (of `symbols`, default any); None if none."""
    stmt = select(func.min(Bar.ts), func.max(Bar.ts)).where(Bar.timeframe == Timeframe.D1)
    if symbols:
        stmt = stmt.where(Bar.symbol.in_([s.upper() for s in symbols]))
    first, last = session.execute(stmt).one()
    if first is None or last is None:
        return None
    return first.date(), last.date()
