"""Live ticks become 1-minute bars: right OHLCV, only complete minutes, idempotent writes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from models.market import Bar
from models.market_data import Tick
from realtime.bar_aggregator import MinuteBarAggregator

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def tick(symbol: str, price: float, seconds: float, size: float = 10) -> Tick:
    return Tick(symbol, price, size, T0 + timedelta(seconds=seconds))


def test_ticks_roll_into_bars_and_only_finished_minutes_close() -> None:
    agg = MinuteBarAggregator(make_session_factory(make_engine("sqlite://")))
    for price, second in [(10, 1), (12, 20), (9, 40), (11, 59)]:
        agg.add(tick("AAA", price, second))
    agg.add(tick("AAA", 20, 61))  # next minute: closes the first bar
    agg.add(tick("AAA", 5, 30))  # late: older than the open bar
    done = agg.close_finished(T0 + timedelta(seconds=62))
    assert [(b.start, b.open, b.high, b.low, b.close, b.volume) for b in done] == [
        (T0, 10, 12, 9, 11, 40)
    ]
    assert agg.late_ticks == 1
    assert agg.close_finished(T0 + timedelta(seconds=119)) == []  # minute 2 not over (+grace)
    (next_bar,) = agg.close_finished(T0 + timedelta(seconds=123))
    assert (next_bar.start, next_bar.close) == (T0 + timedelta(minutes=1), 20)


def test_complete_bars_are_written_once_whatever_the_retries(migrated_db_url: str) -> None:
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    agg = MinuteBarAggregator(sessions)
    for n, price in enumerate([100.5, 101.25, 99.75]):
        agg.add(tick("LIVE", price, n * 10))
    agg.add(tick("OTHER", 50, 5))
    written = asyncio.run(agg.flush(T0 + timedelta(minutes=2)))
    assert written == 2
    assert asyncio.run(agg.flush(T0 + timedelta(minutes=2))) == 0  # nothing new to write
    again = MinuteBarAggregator(sessions)  # a restart re-sending the same minute
    for n, price in enumerate([100.5, 101.25, 99.75]):
        again.add(tick("LIVE", price, n * 10))
    asyncio.run(again.flush(T0 + timedelta(minutes=2)))
    with sessions() as s:
        bars = s.scalars(select(Bar).where(Bar.symbol == "LIVE")).all()
    assert len(bars) == 1
    bar = bars[0]
    assert (bar.timeframe, bar.ts) == ("1m", T0)
    assert (bar.open, bar.high, bar.low, bar.close) == tuple(
        Decimal(x) for x in ("100.5", "101.25", "99.75", "99.75")
    )
    engine.dispose()
