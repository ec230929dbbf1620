"""The market snapshot: its numbers, point in time, and a hash equal on SQLite and Postgres."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import insert
from sqlalchemy.orm import Session

from models.enums import Timeframe
from models.market import Bar, Instrument
from models.snapshot import MarketSnapshot
from tasks.import_bars import import_bar_file
from tasks.import_instruments import import_instrument_file
from tasks.market_snapshot import build_snapshot
from tests.conftest import SAMPLE_DATA

DAY0 = date(2020, 1, 1)
SAMPLE_SYMBOLS = (  # noqa: SIM905 (thirty tickers read better as one string)
    "AAPL MSFT AMZN GOOGL JPM JNJ XOM PG V UNH HD BAC KO PFE DIS "
    "CSCO INTC WMT CVX MRK T NVDA NFLX BA MCD IBM GS CAT CBS VIAB"
).split()
# sha256 of the 1,800 sample bars used as of 2019-06-03, computed once; any backend must agree.
SAMPLE_HASH = "800d62561c0bbba8a8adaa62f41675a9ff44f796a2fe7442266c3c1006093e5e"


def _stamp(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _add_instrument(session: Session, symbol: str, sector: str | None = None) -> None:
    session.execute(insert(Instrument), [{"symbol": symbol, "sector": sector}])


def _add_bars(session: Session, symbol: str, closes: Sequence[str], first: date = DAY0) -> None:
    """One daily bar per calendar day from `first`, OHLC all at the close."""
    session.execute(
        insert(Bar),
        [
            {
                "symbol": symbol,
                "timeframe": Timeframe.D1,
                "ts": _stamp(first + timedelta(days=i)),
                "open": Decimal(c),
                "high": Decimal(c),
                "low": Decimal(c),
                "close": Decimal(c),
                "volume": Decimal(1000),
            }
            for i, c in enumerate(closes)
        ],
    )


def _add_symbol(
    session: Session, symbol: str, closes: Sequence[str], sector: str | None = None
) -> None:
    _add_instrument(session, symbol, sector)
    _add_bars(session, symbol, closes)


def _wavy_path(n: int, phase: float = 0.0) -> list[str]:
    return [f"{100 + 8 * math.sin(i / 4 + phase) + 0.3 * i:.2f}" for i in range(n)]


def _last_day(closes: Sequence[str]) -> date:
    return DAY0 + timedelta(days=len(closes) - 1)


def test_metrics_match_a_hand_computed_path(session: Session) -> None:
    # 40 bars at 100, a peak at 200, then 20 bars at 150.
    closes = ["100"] * 40 + ["200"] + ["150"] * 20
    _add_symbol(session, "AAA", closes, sector="Tech")
    (aaa,) = build_snapshot(session, ["AAA"], _last_day(closes)).symbols
    assert aaa.close == 150.0
    assert (aaa.ret_1d, aaa.ret_5d, aaa.ret_7d, aaa.ret_20d) == (0.0, 0.0, 0.0, -0.25)
    assert aaa.drawdown_60d == -0.25
    assert aaa.dist_sma_20 == 0.0
    assert aaa.dist_sma_50 == round(150 / ((29 * 100 + 200 + 20 * 150) / 50) - 1, 6)
    # one log return of ln(0.75) among 19 zeros: sample std = |ln 0.75| / sqrt(20)
    assert aaa.vol_20d == round(abs(math.log(0.75)) * math.sqrt(252 / 20), 6)
    assert aaa.last_bar == _stamp(_last_day(closes))


def test_metrics_match_pandas_on_a_wavy_path(session: Session) -> None:
    closes = _wavy_path(70)
    _add_symbol(session, "AAA", closes)
    snapshot = build_snapshot(session, ["AAA"], _last_day(closes), lookback_bars=60)
    (aaa,) = snapshot.symbols
    s = pd.Series([float(c) for c in closes]).tail(60)
    expected = {
        "ret_1d": s.iloc[-1] / s.iloc[-2] - 1,
        "ret_5d": s.iloc[-1] / s.iloc[-6] - 1,
        "ret_7d": s.iloc[-1] / s.iloc[-8] - 1,
        "ret_20d": s.iloc[-1] / s.iloc[-21] - 1,
        "vol_20d": s.apply(math.log).diff().tail(20).std() * math.sqrt(252),
        "drawdown_60d": s.iloc[-1] / s.max() - 1,
        "dist_sma_20": s.iloc[-1] / s.rolling(20).mean().iloc[-1] - 1,
        "dist_sma_50": s.iloc[-1] / s.rolling(50).mean().iloc[-1] - 1,
    }
    got = aaa.model_dump(include=set(expected))
    assert got == pytest.approx(expected, abs=1e-6)
    assert all(round(v, 6) == v for v in got.values())
    assert snapshot.bars_used == 60
    assert MarketSnapshot.model_validate_json(snapshot.model_dump_json()) == snapshot


def test_a_lookback_shorter_than_a_window_leaves_that_metric_none(session: Session) -> None:
    closes = _wavy_path(70)
    _add_symbol(session, "AAA", closes)
    snapshot = build_snapshot(session, ["AAA"], _last_day(closes), lookback_bars=30)
    (aaa,) = snapshot.symbols
    assert snapshot.bars_used == 30
    assert (aaa.drawdown_60d, aaa.dist_sma_50) == (None, None)
    assert aaa.ret_20d is not None
    assert aaa.vol_20d is not None
    assert aaa.dist_sma_20 is not None


def test_correlation_matches_pandas_and_is_none_for_a_flat_series(session: Session) -> None:
    rng = np.random.default_rng(7)
    returns = rng.normal(0, 0.02, size=40)
    aaa = 100 * np.cumprod(1 + returns)
    paths = {
        "AAA": [f"{p:.2f}" for p in aaa],
        "BBB": [f"{2 * float(f'{p:.2f}'):.2f}" for p in aaa],  # same returns
        "CCC": [f"{p:.8f}" for p in 50 * np.cumprod(1 - returns)],  # opposite returns
        "DDD": [f"{p:.2f}" for p in 100 * np.cumprod(1 + rng.normal(0, 0.02, size=40))],
        "FLAT": ["10"] * 40,
    }
    for symbol, closes in paths.items():
        _add_symbol(session, symbol, closes)
    corr = build_snapshot(session, list(paths), _last_day(paths["AAA"]), corr_window=20).correlation
    assert corr.window == 20
    assert corr.symbols == ["AAA", "BBB", "CCC", "DDD", "FLAT"]
    frame = pd.DataFrame({s: [float(c) for c in closes] for s, closes in paths.items()})
    expected = frame.pct_change().tail(20).corr().to_numpy()
    m = corr.matrix
    assert m[0][1] == 1.0
    assert m[0][2] == pytest.approx(-1.0, abs=1e-4)
    assert [row[:4] for row in m[:4]] == pytest.approx(expected[:4, :4], abs=1e-6)
    assert m[4] == [None] * 5
    assert [row[4] for row in m] == [None] * 5
    assert all(m[i][j] == m[j][i] for i in range(5) for j in range(5))


def test_a_bar_after_as_of_changes_nothing(session: Session) -> None:
    closes = _wavy_path(65)
    _add_symbol(session, "AAA", closes)
    as_of = _last_day(closes)
    before = build_snapshot(session, ["AAA"], as_of)
    _add_bars(session, "AAA", ["1000000"], first=as_of + timedelta(days=1))
    after = build_snapshot(session, ["AAA"], as_of)
    assert after == before
    assert after.model_dump_json() == before.model_dump_json()
    assert build_snapshot(session, ["AAA"], as_of + timedelta(days=1)).symbols[0].close == 1e6


def test_the_bar_of_the_as_of_day_counts_only_once_the_day_is_over(session: Session) -> None:
    closes = [*_wavy_path(64), "1000000"]
    _add_symbol(session, "AAA", closes)
    day = _last_day(closes)
    day_before = build_snapshot(session, ["AAA"], day - timedelta(days=1))
    late_that_day = build_snapshot(session, ["AAA"], _stamp(day) + timedelta(hours=23, minutes=59))
    assert late_that_day.knowledge_cutoff < _stamp(day)
    assert late_that_day.symbols == day_before.symbols
    assert late_that_day.data_hash == day_before.data_hash

    that_day = build_snapshot(session, ["AAA"], day)
    assert that_day.symbols[0].close == 1e6
    assert that_day.symbols[0].last_bar == _stamp(day)
    # a date means the end of that day: the next midnight, UTC
    assert that_day.as_of == _stamp(day + timedelta(days=1))
    assert build_snapshot(session, ["AAA"], _stamp(day + timedelta(days=1))) == that_day


def test_the_hash_is_sha256_of_a_canonical_text_on_every_backend(session: Session) -> None:
    """The expected digest is built here from the inserted values, independently of the code."""
    _add_instrument(session, "AAA")
    _add_instrument(session, "BBB")
    rows = [
        ("BBB", datetime(2020, 1, 2, tzinfo=UTC), "10", "10.50000000", "9.9", "10.5", "1000"),
        ("AAA", datetime(2020, 1, 3, tzinfo=UTC), "0.1", "0.3", "0.00000001", "0.2", "0.5"),
        ("AAA", datetime(2020, 1, 2, tzinfo=UTC), "12345.6789", "12346", "12000", "12001", "0"),
        ("BBB", datetime(2020, 1, 1, tzinfo=UTC), "109.25", "110", "100", "100.1", "49650800"),
    ]
    keys = ("symbol", "ts", "open", "high", "low", "close", "volume")
    session.execute(
        insert(Bar),
        [
            {"timeframe": Timeframe.D1, **dict(zip(keys, (s, ts, *map(Decimal, v)), strict=True))}
            for s, ts, *v in rows
        ],
    )
    text = (
        "aitrader-bars/v1 1d\n"
        "AAA,2020-01-02T00:00:00.000000+00:00,12345.6789,12346,12000,12001,0\n"
        "AAA,2020-01-03T00:00:00.000000+00:00,0.1,0.3,0.00000001,0.2,0.5\n"
        "BBB,2020-01-01T00:00:00.000000+00:00,109.25,110,100,100.1,49650800\n"
        "BBB,2020-01-02T00:00:00.000000+00:00,10,10.5,9.9,10.5,1000\n"
    )
    snapshot = build_snapshot(session, ["BBB", "AAA"], date(2020, 1, 3))
    assert snapshot.data_hash == hashlib.sha256(text.encode()).hexdigest()
    assert snapshot.bars_used == 4
    assert build_snapshot(session, ["aaa", "BBB", "AAA"], date(2020, 1, 3)) == snapshot


def test_missing_symbols_are_listed_and_short_histories_give_none(session: Session) -> None:
    _add_symbol(session, "AAA", _wavy_path(70), sector="Tech")
    _add_instrument(session, "BBB", sector="Tech")
    _add_bars(session, "BBB", ["10", "11", "12"], first=DAY0 + timedelta(days=67))
    _add_instrument(session, "CCC")  # known instrument, no bars
    snapshot = build_snapshot(session, ["ddd", "BBB", "AAA", "CCC"], _last_day(_wavy_path(70)))

    assert snapshot.universe == ["AAA", "BBB", "CCC", "DDD"]
    assert snapshot.missing == ["CCC", "DDD"]
    assert [s.symbol for s in snapshot.symbols] == ["AAA", "BBB"]
    assert snapshot.bars_used == 63
    aaa, bbb = snapshot.symbols
    assert bbb.close == 12.0
    assert bbb.ret_1d == round(12 / 11 - 1, 6)
    assert (bbb.ret_5d, bbb.ret_7d, bbb.ret_20d, bbb.vol_20d) == (None, None, None, None)
    assert (bbb.drawdown_60d, bbb.dist_sma_20, bbb.dist_sma_50) == (None, None, None)
    # sector means are over the members that have the metric
    (tech,) = snapshot.sectors
    assert (tech.sector, tech.symbols) == ("Tech", 2)
    assert tech.mean_ret_5d == aaa.ret_5d
    assert aaa.dist_sma_50 is not None
    assert aaa.dist_sma_50 < 0
    assert tech.breadth_above_sma_50 == 0.0  # AAA below its SMA50; BBB has none
    # BBB has two returns in the window: too few to correlate, even with itself
    assert snapshot.correlation.matrix == [[1.0, None], [None, None]]


def test_symbols_without_a_sector_are_listed_but_not_aggregated(session: Session) -> None:
    _add_symbol(session, "AAA", _wavy_path(60), sector="Energy")
    _add_symbol(session, "BBB", _wavy_path(60, phase=1.0), sector="Energy")
    _add_symbol(session, "CCC", _wavy_path(60, phase=2.0))
    snapshot = build_snapshot(session, ["AAA", "BBB", "CCC"], _last_day(_wavy_path(60)))
    assert [(s.symbol, s.sector) for s in snapshot.symbols] == [
        ("AAA", "Energy"),
        ("BBB", "Energy"),
        ("CCC", None),
    ]
    (energy,) = snapshot.sectors
    assert energy.symbols == 2
    aaa, bbb, _ = snapshot.symbols
    assert aaa.ret_20d is not None
    assert bbb.ret_20d is not None
    assert energy.mean_ret_20d == pytest.approx((aaa.ret_20d + bbb.ret_20d) / 2, abs=1e-6)


def test_a_universe_without_bars_gives_an_empty_snapshot(session: Session) -> None:
    snapshot = build_snapshot(session, ["AAA", "BBB"], date(2020, 1, 1))
    assert snapshot.missing == ["AAA", "BBB"]
    assert (snapshot.symbols, snapshot.sectors, snapshot.bars_used) == ([], [], 0)
    assert snapshot.correlation.matrix == []
    assert snapshot.data_hash == hashlib.sha256(b"aitrader-bars/v1 1d\n").hexdigest()


def test_inconsistent_arguments_are_refused(session: Session) -> None:
    day = date(2020, 1, 1)
    with pytest.raises(ValueError, match="only 1d bars"):
        build_snapshot(session, ["AAA"], day, timeframe=Timeframe.H1)
    with pytest.raises(ValueError, match="must exceed corr_window"):
        build_snapshot(session, ["AAA"], day, lookback_bars=20, corr_window=20)
    with pytest.raises(ValueError, match="at least 3"):
        build_snapshot(session, ["AAA"], day, corr_window=2)
    with pytest.raises(ValueError, match="empty"):
        build_snapshot(session, [], day)
    with pytest.raises(ValueError, match="naive"):
        build_snapshot(session, ["AAA"], datetime(2020, 1, 1))
    with pytest.raises(ValidationError):
        build_snapshot(session, ["AAA;DROP"], day)


def _import_sample(session: Session) -> None:
    import_instrument_file(session, SAMPLE_DATA / "sp500_sectors_sample.csv")
    import_bar_file(session, SAMPLE_DATA / "sp500_daily_sample.csv.gz")


def test_sample_data_snapshot_is_sane(session: Session) -> None:
    _import_sample(session)
    snapshot = build_snapshot(session, SAMPLE_SYMBOLS, date(2019, 6, 3))
    assert len(snapshot.symbols) == 30
    assert snapshot.missing == []
    assert snapshot.bars_used == 30 * 60
    assert {s.last_bar for s in snapshot.symbols} == {datetime(2019, 6, 3, tzinfo=UTC)}
    assert [s.symbol for s in snapshot.symbols if s.sector is None] == ["CBS", "VIAB"]
    assert sum(s.symbols for s in snapshot.sectors) == 28
    assert len(snapshot.sectors) >= 8
    assert all(s.vol_20d is not None and 0.05 < s.vol_20d < 1.5 for s in snapshot.symbols)
    assert all(s.drawdown_60d is not None and s.drawdown_60d <= 0 for s in snapshot.symbols)
    m = snapshot.correlation.matrix
    assert snapshot.correlation.symbols == sorted(SAMPLE_SYMBOLS)
    assert all(m[i][i] == 1.0 for i in range(30))
    assert all(m[i][j] == m[j][i] for i in range(30) for j in range(30))
    assert all(v is not None and -1 <= v <= 1 for row in m for v in row)


def test_sample_data_hash_is_the_same_on_every_backend(session: Session) -> None:
    _import_sample(session)
    assert build_snapshot(session, SAMPLE_SYMBOLS, date(2019, 6, 3)).data_hash == SAMPLE_HASH
