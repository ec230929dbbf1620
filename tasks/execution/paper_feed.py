"""Driving paper brokers from stored bars, when the realtime price stream is not theirs.

A paper broker fills from the prices it is given. Between council runs the
bracket exits must see every bar that happened, in order, or a stop that was
crossed on Tuesday would fill at Friday's price. Each complete bar is played as
a path, open -> the extreme nearer the open -> the other extreme -> close,
the usual assumption when only OHLC is known; stamps run from the bar's start
to its end so a feed resumes exactly after the last price it gave.

Point in time: only bars complete at `until` are fed (`knowledge_cutoff`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.bars import knowledge_cutoff
from models.broker import BrokerFill
from models.enums import Timeframe
from models.market import Bar
from services.brokers.paper import PaperBroker


def bar_path(bar: Bar) -> list[tuple[Decimal, datetime]]:
    """The bar as four prices stamped a quarter of the bar apart, the close at the bar's end.

    Nothing is stamped at the bar's start, which is the previous bar's end: an
    order executed at the previous close (stamped just after it) still sees
    this bar's open as its next price.
    """
    return ohlc_path(bar.open, bar.high, bar.low, bar.close, bar.ts, bar.timeframe.duration)


def ohlc_path(
    open_: float | Decimal,
    high: float | Decimal,
    low: float | Decimal,
    close: float | Decimal,
    start: datetime,
    duration: timedelta,
) -> list[tuple[Decimal, datetime]]:
    """`bar_path` from the bar's numbers: a backtest plays its in-memory bars through here, so
    a paper broker fed from a panel sees the very prices `feed_bars` would give it."""
    step = duration / 4
    o, h, lo, c = (Decimal(str(v)) for v in (open_, high, low, close))
    first, second = (lo, h) if abs(o - lo) <= abs(h - o) else (h, lo)
    return [(p, start + step * (i + 1)) for i, p in enumerate((o, first, second, c))]


def play_path(
    broker: PaperBroker,
    symbol: str,
    path: list[tuple[Decimal, datetime]],
    seen: datetime | None = None,
) -> list[BrokerFill]:
    """Give `broker` the path's prices after `seen`, each working level between two points
    quoted on the way; the fills they made."""
    fills: list[BrokerFill] = []
    previous: Decimal | None = None
    for price, ts in path:
        if seen is not None and ts <= seen:
            continue
        if previous is not None:  # inside a bar the price moves through every level
            fills.extend(_visit_levels(broker, symbol, previous, price, ts))
        fills.extend(broker.on_price(symbol, price, ts))
        previous = price
    return fills


def feed_bars(
    session: Session,
    broker: PaperBroker,
    symbols: Iterable[str],
    until: datetime,
    timeframe: Timeframe = Timeframe.D1,
) -> list[BrokerFill]:
    """Play every bar of `symbols` the broker has not seen, up to `until`; return the fills.

    A symbol the broker never priced gets just its latest bar: history before
    the broker existed cannot fill anything.
    """
    cutoff = knowledge_cutoff(until, timeframe)
    fills: list[BrokerFill] = []
    for symbol in sorted(set(symbols)):
        seen = broker.last_price_at(symbol)
        stmt = select(Bar).where(Bar.symbol == symbol, Bar.timeframe == timeframe, Bar.ts <= cutoff)
        if seen is None:
            bars = list(session.scalars(stmt.order_by(Bar.ts.desc()).limit(1)))
        else:
            after = seen - timeframe.duration + timedelta(microseconds=1)
            bars = list(session.scalars(stmt.where(Bar.ts >= after).order_by(Bar.ts)))
        for bar in bars:
            fills.extend(play_path(broker, symbol, bar_path(bar), seen))
    return fills


def _visit_levels(
    broker: PaperBroker, symbol: str, start: Decimal, end: Decimal, ts: datetime
) -> list[BrokerFill]:
    """Quote each working order's level that lies strictly between two path points.

    Without this a limit sell at 110 on a move from 108 to 112 would fill at
    112: a gift. A move across the open (from the previous close) is a gap and
    is not interpolated: there an order fills at the gapped price.
    """
    low, high = min(start, end), max(start, end)
    levels = [lv for lv in broker.trigger_levels(symbol) if low < lv < high]
    levels.sort(reverse=end < start)
    fills: list[BrokerFill] = []
    for k, level in enumerate(levels):
        fills.extend(broker.on_price(symbol, level, ts - timedelta(microseconds=len(levels) - k)))
    return fills


def last_close(
    session: Session, symbol: str, until: datetime, timeframe: Timeframe = Timeframe.D1
) -> tuple[Decimal, datetime] | None:
    """The newest close known at `until` and the instant it became known (the bar's end)."""
    bar = session.scalars(
        select(Bar)
        .where(
            Bar.symbol == symbol,
            Bar.timeframe == timeframe,
            Bar.ts <= knowledge_cutoff(until, timeframe),
        )
        .order_by(Bar.ts.desc())
        .limit(1)
    ).first()
    if bar is None:
        return None
    return Decimal(str(bar.close)), bar.ts + timeframe.duration
