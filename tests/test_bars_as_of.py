"""Point in time: `bars_as_of` never returns a bar that was not complete at `as_of`."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, insert
from sqlalchemy.orm import Session

from db.queries.bars import bars_as_of
from models.enums import Timeframe
from models.market import Bar, Instrument

SYMBOLS = ["AAA", "BBB", "CCC"]
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _insert(session: Session, timeframe: Timeframe, stamps: dict[str, list[datetime]]) -> None:
    session.execute(insert(Instrument), [{"symbol": s} for s in SYMBOLS])
    rows = [
        {
            "symbol": s,
            "timeframe": timeframe,
            "ts": ts,
            "open": 1,
            "high": 2,
            "low": 1,
            "close": i + 1,
            "volume": 1,
        }
        for s, series in stamps.items()
        for i, ts in enumerate(sorted(series))
    ]
    if rows:
        session.execute(insert(Bar), rows)


steps = st.lists(st.integers(min_value=0, max_value=400), unique=True, max_size=25)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    timeframe=st.sampled_from([Timeframe.D1, Timeframe.M1, Timeframe.H1]),
    offsets=st.fixed_dictionaries({s: steps for s in SYMBOLS}),
    as_of_minutes=st.integers(min_value=-100, max_value=400 * 24 * 60),
    lookback=st.one_of(
        st.integers(min_value=1, max_value=30),
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=500)),
    ),
)
def test_never_returns_a_bar_stamped_after_as_of(
    db_engine: Engine,
    timeframe: Timeframe,
    offsets: dict[str, list[int]],
    as_of_minutes: int,
    lookback: int | timedelta,
) -> None:
    stamps = {s: [EPOCH + n * timeframe.duration for n in ns] for s, ns in offsets.items()}
    as_of = EPOCH + timedelta(minutes=as_of_minutes)
    with db_engine.connect() as conn, conn.begin() as tx:
        session = Session(bind=conn)
        _insert(session, timeframe, stamps)
        got = bars_as_of(session, SYMBOLS, as_of, lookback, timeframe)
        tx.rollback()

    assert all(b.ts <= as_of and b.ts + timeframe.duration <= as_of for b in got)
    # and it is exactly what an oracle over the same data would return, in order
    expected = []
    for s in SYMBOLS:
        known = sorted(ts for ts in stamps[s] if ts + timeframe.duration <= as_of)
        if isinstance(lookback, timedelta):
            known = [ts for ts in known if ts >= as_of - lookback]
        else:
            known = known[-lookback:]
        expected += [(s, ts) for ts in known]
    assert [(b.symbol, b.ts) for b in got] == expected


def test_a_date_means_end_of_that_day_and_an_intraday_time_excludes_the_open_daily_bar(
    session: Session,
) -> None:
    days = [datetime(2019, 6, d, tzinfo=UTC) for d in (5, 6, 7)]
    _insert(session, Timeframe.D1, {"AAA": days})
    as_date = bars_as_of(session, ["AAA"], date(2019, 6, 7), lookback=10)
    assert [b.ts.day for b in as_date] == [5, 6, 7]
    mid_session = bars_as_of(session, ["AAA"], datetime(2019, 6, 7, 15, 0, tzinfo=UTC), lookback=10)
    assert [b.ts.day for b in mid_session] == [5, 6]
    assert not hasattr(as_date[0], "adj_close")


def test_naive_as_of_and_empty_lookback_are_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="naive"):
        bars_as_of(session, ["AAA"], datetime(2020, 1, 1), lookback=5)
    with pytest.raises(ValueError, match="at least one bar"):
        bars_as_of(session, ["AAA"], date(2020, 1, 1), lookback=0)
