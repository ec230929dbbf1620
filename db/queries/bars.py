"""Reading and writing bars. Every stage reads history through `bars_as_of`.

Point in time: a bar is stamped with its interval start and is known only at
its end, so "as of T" returns bars with `ts + timeframe.duration <= T`. A date
means the end of that day: as of 2019-06-07 includes that day's daily bar, as
of 2019-06-07 15:00 UTC does not (its close is not known yet).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    DateTime,
    Float,
    Index,
    MetaData,
    Table,
    and_,
    case,
    func,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Row
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import ReadOnlyColumnCollection
from sqlalchemy.types import TypeDecorator

from models.base import PRICE, QTY, UTCDateTime
from models.enums import Timeframe
from models.market import Bar, BarOut

if TYPE_CHECKING:
    import pandas as pd  # frames are passed in; only bars_frame builds one, and imports it

Progress = Callable[[int, int], None]
"""Called with (rows done, rows total) while a long write runs."""

BATCH_ROWS = 50_000
_VALUES = ("open", "high", "low", "close", "adj_close", "volume")
_KEY = ("symbol", "timeframe", "ts")


@dataclass(frozen=True)
class UpsertCounts:
    inserted: int
    updated: int
    unchanged: int


def upsert_bars(
    session: Session, frame: pd.DataFrame, timeframe: Timeframe, progress: Progress | None = None
) -> UpsertCounts:
    """Write validated bars; new keys are inserted, changed values updated, equal rows untouched.

    The rows go to a temporary staging table first (COPY on Postgres, batched
    executemany on SQLite); one join counts what is new and what changed, and one
    INSERT .. ON CONFLICT merges. Runs inside the caller's transaction and does
    not commit. `frame` must hold each (symbol, ts) once, as `validate_bars` ensures.
    `tasks/import_bars.py` uses the parts (`stage_bars`, `merge_staged_bars`) to keep
    the SQLite write lock off the staging.
    """
    conn = session.connection()
    # CREATE TEMPORARY is transactional on both databases: if anything below raises,
    # the caller's rollback removes the table. Dropping it in a `finally` would run
    # inside an aborted Postgres transaction and hide the original error.
    stage = stage_bars(conn, frame, timeframe, progress)
    counts = merge_staged_bars(conn, stage)
    stage.drop(conn)
    return counts


def stage_bars(
    conn: Connection, frame: pd.DataFrame, timeframe: Timeframe, progress: Progress | None = None
) -> Table:
    """Load `frame` into a new temporary staging table on `conn` (which must be in a
    transaction). A temporary table is the connection's own: on SQLite, writing it takes
    no lock on the database, so the slow part of an import need not hold the write lock."""
    stage = _staging_table()
    stage.create(conn)
    _load_stage(conn, stage, frame, timeframe, progress)
    Index("bar_stage_symbol", stage.c.symbol).create(conn)  # merges go symbol batch by batch
    return stage


def merge_staged_bars(
    conn: Connection, stage: Table, symbols: Sequence[str] | None = None
) -> UpsertCounts:
    """Merge the staged rows (of `symbols` only, if given) into `bars`; count what changed."""
    bars = cast(Table, Bar.__table__)
    on_key = and_(*(stage.c[k] == bars.c[k] for k in _KEY))
    only = stage.c.symbol.in_(list(symbols)) if symbols is not None else true()
    total = conn.scalar(select(func.count()).select_from(stage).where(only)) or 0
    existing, changed = conn.execute(
        select(func.count(), func.count(case((_any_distinct(bars.c, stage.c), 1))))
        .select_from(stage.join(bars, on_key))
        .where(only)
    ).one()
    insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert_fn(bars).from_select(
        [*_KEY, *_VALUES], select(*(stage.c[k] for k in (*_KEY, *_VALUES))).where(only)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=list(_KEY),
        set_={k: stmt.excluded[k] for k in _VALUES},
        where=_any_distinct(bars.c, stmt.excluded),
    )
    conn.execute(stmt)
    return UpsertCounts(inserted=total - existing, updated=changed, unchanged=existing - changed)


def bars_as_of(
    session: Session,
    symbols: Sequence[str],
    as_of: datetime | date,
    lookback: int | timedelta,
    timeframe: Timeframe = Timeframe.D1,
) -> list[BarOut]:
    """Bars of `symbols` known at `as_of`, oldest first per symbol.

    `lookback` is a bar count per symbol (the last N known bars) or a time
    window ending at `as_of`. `adj_close` is deliberately absent: it embeds
    corporate actions from after the bar, which would leak the future.
    """
    cutoff = knowledge_cutoff(as_of, timeframe)
    cols = [Bar.symbol, Bar.timeframe, Bar.ts, Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume]
    known = (Bar.symbol.in_(list(symbols)), Bar.timeframe == timeframe, Bar.ts <= cutoff)
    if isinstance(lookback, timedelta):
        window_start = cutoff + timeframe.duration - lookback
        stmt = select(*cols).where(*known, Bar.ts >= window_start)
    else:
        if lookback < 1:
            raise ValueError(f"lookback must be at least one bar, got {lookback}")
        # Ranking every bar ever known is what costs (530 k rows for 482 daily symbols:
        # 1.2 s on SQLite). A symbol with `lookback` bars inside a recent span has its last
        # `lookback` bars there; only the others (new, halted, delisted) need the whole past.
        span = timeframe.duration * lookback * 2 + timedelta(days=14)
        recent = _last_bars(session, cols, (*known, Bar.ts > cutoff - span), lookback)
        counts: dict[str, int] = {}
        for row in recent:
            counts[row.symbol] = counts.get(row.symbol, 0) + 1
        short = [s for s in symbols if counts.get(s, 0) < lookback]
        rows = [r for r in recent if counts[r.symbol] >= lookback]
        if short:
            older = (Bar.symbol.in_(short), *known[1:])
            rows += _last_bars(session, cols, older, lookback)
        bars = [BarOut.model_validate(row._mapping) for row in rows]
        return sorted(bars, key=lambda b: (b.symbol, b.ts))
    rows = list(session.execute(stmt).all())
    bars = [BarOut.model_validate(row._mapping) for row in rows]
    return sorted(bars, key=lambda b: (b.symbol, b.ts))


def _last_bars(
    session: Session, cols: Sequence[Any], where: Sequence[Any], lookback: int
) -> list[Row[Any]]:
    """The last `lookback` bars of each symbol among the bars `where` selects."""
    rank = func.row_number().over(partition_by=Bar.symbol, order_by=Bar.ts.desc()).label("rank")
    ranked = select(*cols, rank).where(*where).subquery()
    stmt = select(*(ranked.c[c.key] for c in cols)).where(ranked.c.rank <= lookback)
    return list(session.execute(stmt).all())


def knowledge_cutoff(as_of: datetime | date, timeframe: Timeframe) -> datetime:
    """The latest bar stamp whose bar is complete at `as_of`."""
    if isinstance(as_of, datetime):
        if as_of.tzinfo is None or as_of.utcoffset() is None:
            raise ValueError(f"as_of {as_of!r} is naive; pass an aware datetime or a date")
        instant = as_of.astimezone(UTC)
    else:
        instant = datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC) + timedelta(days=1)
    return instant - timeframe.duration


def _staging_table() -> Table:
    # Same column types as `bars`, so values are stored and compared identically.
    return Table(
        "bar_stage",
        MetaData(),
        Column("symbol", Bar.__table__.c.symbol.type),
        Column("timeframe", Bar.__table__.c.timeframe.type),
        Column("ts", UTCDateTime()),
        *(Column(k, PRICE) for k in ("open", "high", "low", "close", "adj_close")),
        Column("volume", QTY),
        prefixes=["TEMPORARY"],
    )


def _load_stage(
    conn: Connection,
    stage: Table,
    frame: pd.DataFrame,
    timeframe: Timeframe,
    progress: Progress | None,
) -> None:
    total = len(frame)
    load = _copy_chunk if conn.dialect.name == "postgresql" else _insert_chunk
    for start in range(0, total, BATCH_ROWS):
        load(conn, stage, frame.iloc[start : start + BATCH_ROWS], timeframe)
        if progress:
            progress(min(start + BATCH_ROWS, total), total)


def _insert_chunk(conn: Connection, stage: Table, chunk: pd.DataFrame, tf: Timeframe) -> None:
    """executemany with values prepared column-wise: 5x faster than per-row type processing.

    The timestamp text must be exactly what `UTCDateTime` stores on SQLite, or
    the merge would compare unequal strings; `_sqlite_ts_text` checks that.
    """
    stamps = _sqlite_ts_text(chunk["ts"], conn.dialect)
    values = [chunk[k].astype(object).where(chunk[k].notna(), None) for k in _VALUES]
    rows = list(zip(chunk["symbol"], [tf.value] * len(chunk), stamps, *values, strict=True))
    marks = ", ".join("?" * (len(_KEY) + len(_VALUES)))
    conn.exec_driver_sql(
        f"INSERT INTO {stage.name} ({', '.join((*_KEY, *_VALUES))}) VALUES ({marks})",  # noqa: S608
        rows,
    )


def _sqlite_ts_text(ts: pd.Series, dialect: Dialect) -> list[str]:
    texts: list[str] = ts.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
    if texts:
        # The column type's own bind processor: what SQLAlchemy would store for this value.
        bind = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        first = ts.iloc[0].to_pydatetime()
        expected = bind(first) if bind else first
        if expected != texts[0]:
            raise RuntimeError(f"SQLite timestamp text {texts[0]!r} != stored form {expected!r}")
    return texts


def _copy_chunk(conn: Connection, stage: Table, chunk: pd.DataFrame, tf: Timeframe) -> None:
    """COPY a chunk into the staging table: about 10x faster than INSERT on Postgres."""
    buf = StringIO()
    out = chunk[["symbol", "ts", *_VALUES]].copy()
    out.insert(1, "timeframe", tf.value)
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00:00")
    out.to_csv(buf, index=False, header=False, na_rep="")
    buf.seek(0)
    raw = conn.connection.driver_connection
    with raw.cursor() as cur:  # type: ignore[union-attr]
        cur.copy_expert(
            f"COPY {stage.name} (symbol, timeframe, ts, {', '.join(_VALUES)}) "
            "FROM STDIN WITH (FORMAT csv)",
            buf,
        )


def _any_distinct(
    left: ReadOnlyColumnCollection[str, Any], right: ReadOnlyColumnCollection[str, Any]
) -> ColumnElement[bool]:
    """True where any value column differs, NULL-safe (adj_close may be NULL)."""
    return or_(*(left[k].is_distinct_from(right[k]) for k in _VALUES))


def bars_between(
    session: Session,
    symbol: str,
    timeframe: Timeframe,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[BarOut]:
    """One symbol's stored bars stamped in [since, until), newest first."""
    stmt = select(Bar).where(Bar.symbol == symbol, Bar.timeframe == timeframe)
    if since is not None:
        stmt = stmt.where(Bar.ts >= since)
    if until is not None:
        stmt = stmt.where(Bar.ts < until)
    stmt = stmt.order_by(Bar.ts.desc()).offset(offset).limit(limit)
    return [BarOut.model_validate(row, from_attributes=True) for row in session.scalars(stmt)]


def newest_bar_day(session: Session, timeframe: Timeframe = Timeframe.D1) -> date | None:
    """The day of the newest stored bar: where "as of now" lands for stored history."""
    newest = session.scalar(select(func.max(Bar.ts)).where(Bar.timeframe == timeframe))
    return newest.date() if newest is not None else None


def stored_symbols(session: Session, timeframe: Timeframe = Timeframe.D1) -> list[str]:
    """Every symbol with bars of `timeframe`, sorted: the universe when none is named."""
    stmt = select(Bar.symbol).where(Bar.timeframe == timeframe).distinct().order_by(Bar.symbol)
    return list(session.scalars(stmt))


def bars_frame(
    session: Session,
    symbols: Sequence[str],
    start: date,
    end: date,
    timeframe: Timeframe = Timeframe.D1,
) -> pd.DataFrame:
    """Bars of `symbols` from `start` to `end` as one frame (symbol, ts, open, high, low,
    close, volume as floats), for backtests.

    Point in time like `bars_as_of`: only bars complete by the end of `end`.
    Columnar and float on purpose: a backtest reads 100,000s of bars into
    numpy, and a pydantic object per bar costs more than the simulation.
    """
    first = datetime(start.year, start.month, start.day, tzinfo=UTC)
    cutoff = knowledge_cutoff(end, timeframe)
    # Floats and raw stamps straight from the driver: Decimal and per-row datetime
    # processing would be ~80 % of the read.
    values = [sql_cast(c, Float) for c in (Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume)]
    stmt = (
        select(Bar.symbol, type_coerce(Bar.ts, _RawStamp()), *values)
        .where(
            Bar.symbol.in_(list(symbols)),
            Bar.timeframe == timeframe,
            Bar.ts >= first,
            Bar.ts <= cutoff,
        )
        .order_by(Bar.ts, Bar.symbol)
    )
    rows = session.execute(stmt).all()
    import pandas as pd  # here, so the point-in-time reads above do not load it (0.3 s)

    frame = pd.DataFrame(rows, columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = frame[col].astype("float64")
    # SQLite hands back the stored UTC text, Postgres aware datetimes: both parse as UTC.
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    return frame


class _RawStamp(TypeDecorator[Any]):
    """A timestamp read as the driver gives it (text on SQLite), parsed by pandas in bulk."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> None:
        return None
