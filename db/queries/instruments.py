"""Instrument rows: created on first sight of a symbol, enriched from reference files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from models.market import Instrument

REFERENCE_FIELDS = ("name", "exchange", "sector")


@dataclass(frozen=True)
class InstrumentCounts:
    created: int
    updated: int
    unchanged: int


def ensure_instruments(session: Session | Connection, symbols: Iterable[str]) -> int:
    """Create a bare instrument for each unknown symbol; return how many were created."""
    wanted = sorted(set(symbols))
    if not wanted:
        return 0
    before = session.scalar(select(func.count()).select_from(Instrument)) or 0
    insert_fn = postgresql.insert if _is_postgres(session) else sqlite.insert
    for start in range(0, len(wanted), 5_000):
        rows = [{"symbol": s} for s in wanted[start : start + 5_000]]
        session.execute(
            insert_fn(Instrument).values(rows).on_conflict_do_nothing(index_elements=["symbol"])
        )
    after = session.scalar(select(func.count()).select_from(Instrument)) or 0
    return int(after - before)


def upsert_reference(
    session: Session, rows: Mapping[str, Mapping[str, str | None]]
) -> InstrumentCounts:
    """Set name/exchange/sector from a reference file; fields absent from the file are kept."""
    existing = {
        i.symbol: i
        for i in session.scalars(select(Instrument).where(Instrument.symbol.in_(list(rows))))
    }
    created = updated = unchanged = 0
    for symbol, fields in rows.items():
        known = {k: v for k, v in fields.items() if k in REFERENCE_FIELDS}
        instrument = existing.get(symbol)
        if instrument is None:
            session.add(Instrument(symbol=symbol, **known))
            created += 1
        elif any(getattr(instrument, k) != v for k, v in known.items()):
            for k, v in known.items():
                setattr(instrument, k, v)
            updated += 1
        else:
            unchanged += 1
    session.flush()
    return InstrumentCounts(created=created, updated=updated, unchanged=unchanged)


def _is_postgres(db: Session | Connection) -> bool:
    conn = db.connection() if isinstance(db, Session) else db
    return conn.dialect.name == "postgresql"


def sectors_of(session: Session, symbols: Sequence[str]) -> dict[str, str | None]:
    """The sector of each known instrument among `symbols`; unknown symbols are absent.

    Sectors are reference data as it stands now, not as it stood at any past
    date: the table keeps no classification history, so a symbol reclassified
    since is grouped under its current sector.
    """
    if not symbols:
        return {}
    stmt = select(Instrument.symbol, Instrument.sector).where(Instrument.symbol.in_(list(symbols)))
    return {symbol: sector for symbol, sector in session.execute(stmt)}


def instrument_exists(session: Session, symbol: str) -> bool:
    return session.scalar(select(Instrument.id).where(Instrument.symbol == symbol)) is not None
