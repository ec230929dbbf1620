"""Build the `MarketSnapshot` a council run reasons about, from the bars known at `as_of`.

This module owns the numbers (returns, volatility, drawdown, SMA distances,
sector aggregates, correlations) and the data hash. History is read only
through `bars_as_of`, so a bar still open at `as_of` or stamped after it
cannot reach a figure. No clock, no I/O besides the session: the same data and
arguments give the same snapshot, down to the bytes of its JSON.

What a reader of the snapshot should know:

* Windows count the symbol's own bars, newest last (`models.snapshot` gives
  the formulas). A metric whose window is longer than the symbol's history is
  None, never computed on fewer bars: `ret_20d` and `vol_20d` need 21 bars,
  `dist_sma_50` 50, `drawdown_60d` 60. Only daily bars are accepted: the names
  and the sqrt(252) annualisation mean days.
* Sectors: a symbol whose instrument has no sector keeps `sector=None` and is
  left out of the sector aggregates; an "Unknown" group would average
  unrelated companies into something that reads like a sector. A sector mean
  is over its symbols that have the metric; breadth is the share of symbols
  with a 50-bar SMA whose close is above it. Sectors are today's reference
  data, not as of `as_of` (the instruments table keeps no history).
* Correlation: daily simple returns (each close over the symbol's previous
  bar) on the last `corr_window` bar stamps of the universe, i.e. the market
  calendar as the data shows it. A pair needs common returns on at least half
  the window (and 3), else None; a flat series has no correlation (None).
* Rounding: ratios are rounded to 6 decimals (-0.0 becomes 0.0); `close` is
  the stored price (8 decimals) as a float.
* News: `news_sentiment` is the universe's sentiment from the news items
  known by `as_of` (tasks/sentiment.py), with how many items and from when,
  and its own hash; None, and absent from the JSON, when no scored item was
  known then.
* `data_hash`: sha256 of UTF-8 text, a header line `aitrader-bars/v1 1d`, then
  one line per bar, sorted by (symbol, ts):
  `symbol,ts,open,high,low,close,volume` with ts as ISO 8601 UTC with
  microseconds and each number as the stored Decimal rounded to 8 places,
  trailing zeros stripped, plain notation (`109.25`, `49650800`). SQLite
  stores the price as a float that SQLAlchemy turns back into a Decimal,
  Postgres returns the numeric; hashing this normal form, never a float's
  repr, makes both give the same hash for the same bars.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from db.queries.bars import bars_as_of, knowledge_cutoff
from db.queries.instruments import sectors_of
from models.enums import Timeframe
from models.market import BarOut, Symbol
from models.sentiment import SentimentParams
from models.snapshot import (
    Correlation,
    MarketSnapshot,
    NewsSentiment,
    SectorMetrics,
    SymbolMetrics,
    SymbolNews,
)
from tasks.sentiment import sentiment_as_of, sentiment_hash

Floats = npt.NDArray[np.float64]

HASH_HEADER = "aitrader-bars/v1"
PLACES = 6
TRADING_DAYS = 252
RETURN_BARS = {"ret_1d": 1, "ret_5d": 5, "ret_7d": 7, "ret_20d": 20}
VOL_RETURNS = 20
DRAWDOWN_BARS = 60
SMA_BARS = {"dist_sma_20": 20, "dist_sma_50": 50}
LIQUIDITY_BARS = 20
_WIDTH = max(  # bars the longest window needs
    DRAWDOWN_BARS, VOL_RETURNS + 1, *SMA_BARS.values(), *(n + 1 for n in RETURN_BARS.values())
)
_PRICE_STEP = Decimal("1e-8")  # the scale of the PRICE and QTY columns
_SYMBOL: TypeAdapter[str] = TypeAdapter(Symbol)


def build_snapshot(
    session: Session,
    universe: Sequence[str],
    as_of: datetime | date,
    *,
    lookback_bars: int = 60,
    corr_window: int = 20,
    timeframe: Timeframe = Timeframe.D1,
    sentiment: SentimentParams | None = None,
) -> MarketSnapshot:
    """The snapshot of `universe` from the last `lookback_bars` bars known at `as_of`.

    A date means the end of that day, as for `bars_as_of`; the snapshot's
    `as_of` is that instant in UTC. Symbols are normalised like `Symbol`
    (an invalid one raises), de-duplicated and sorted; those without bars are
    listed in `missing` and count nowhere else. A metric whose window is longer
    than `lookback_bars` is None for every symbol (below 60: `drawdown_60d`).
    """
    if timeframe is not Timeframe.D1:
        raise ValueError(f"{timeframe}: snapshot metrics are daily; only 1d bars are supported")
    if corr_window < 3:
        raise ValueError(f"corr_window must be at least 3 returns, got {corr_window}")
    if lookback_bars <= corr_window:
        raise ValueError(
            f"lookback_bars ({lookback_bars}) must exceed corr_window ({corr_window}): "
            f"{corr_window} returns need {corr_window + 1} bars"
        )
    symbols = sorted({_SYMBOL.validate_python(s) for s in universe})
    if not symbols:
        raise ValueError("universe is empty")
    cutoff = knowledge_cutoff(as_of, timeframe)
    bars = sorted(bars_as_of(session, symbols, as_of, lookback_bars, timeframe), key=_bar_key)
    sectors = sectors_of(session, symbols)
    table = _BarTable(bars, width=max(lookback_bars, _WIDTH))
    columns = _metric_columns(table.closes)
    columns["dollar_volume_20d"] = table.dollar_volumes[:, -LIQUIDITY_BARS:].mean(axis=1)
    present = set(table.symbols)
    instant = cutoff + timeframe.duration  # the instant itself: cutoff is one bar before it
    return MarketSnapshot(
        as_of=instant,
        knowledge_cutoff=cutoff,
        universe=symbols,
        missing=[s for s in symbols if s not in present],
        symbols=_symbol_metrics(table, columns, sectors),
        sectors=_sector_metrics(table, columns, sectors),
        correlation=_correlation(table, corr_window),
        bars_used=len(bars),
        data_hash=data_hash(bars, timeframe),
        news_sentiment=news_sentiment(session, symbols, instant, sentiment or SentimentParams()),
    )


def news_sentiment(
    session: Session, symbols: Sequence[str], as_of: datetime, params: SentimentParams
) -> NewsSentiment | None:
    """The universe's news sentiment from items known by `as_of`; None without scored news."""
    report = sentiment_as_of(session, symbols, as_of, params)
    with_news = [s for s in report.symbols if s.count]
    if report.scorer is None or not with_news:
        return None
    rows = [
        SymbolNews(
            symbol=s.symbol,
            score=s.score or 0.0,
            count=s.count,
            dispersion=s.dispersion or 0.0,
            change=s.change,
            first_known_at=s.first_known_at or as_of,
            last_known_at=s.last_known_at or as_of,
        )
        for s in with_news
    ]
    first = min(r.first_known_at for r in rows)
    last = max(r.last_known_at for r in rows)
    return NewsSentiment(
        summary=(
            f"{report.items} news items on {len(rows)} of the {len(symbols)} symbols, known "
            f"from {_iso(first)} to {_iso(last)} (nothing after {_iso(as_of)}), scored by "
            f"{report.scorer}: score -1..1, an item's weight halving every "
            f"{report.half_life_h:g} h"
        ),
        scorer=report.scorer,
        items=report.items,
        first_known_at=first,
        last_known_at=last,
        half_life_h=report.half_life_h,
        window_h=report.window_h,
        symbols=rows,
        sentiment_hash=sentiment_hash(report),
    )


def data_hash(bars: Sequence[BarOut], timeframe: Timeframe) -> str:
    """sha256 of the bars in the canonical text described in the module docstring."""
    stamps = {ts: _iso(ts) for ts in {bar.ts for bar in bars}}  # symbols share their stamps
    lines = [f"{HASH_HEADER} {timeframe.value}"]
    for bar in sorted(bars, key=_bar_key):
        numbers = (bar.open, bar.high, bar.low, bar.close, bar.volume)
        lines.append(",".join((bar.symbol, stamps[bar.ts], *map(_decimal_text, numbers))))
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


class _BarTable:
    """The bars as arrays: closes right-aligned per symbol (newest in the last column)."""

    def __init__(self, bars: Sequence[BarOut], width: int) -> None:
        names = np.array([b.symbol for b in bars], dtype=object)
        close = np.array([float(b.close.quantize(_PRICE_STEP)) for b in bars], dtype=np.float64)
        volume = np.array([float(b.volume) for b in bars], dtype=np.float64)
        symbols, first, counts = np.unique(names, return_index=True, return_counts=True)
        ends = first + counts  # bars are sorted by (symbol, ts): one past each symbol's newest
        rows = np.repeat(np.arange(len(symbols)), counts)
        cols = width - (np.repeat(ends, counts) - np.arange(len(bars)))
        self.symbols: list[str] = [str(s) for s in symbols]
        self.closes: Floats = np.full((len(symbols), width), np.nan)
        self.closes[rows, cols] = close
        self.dollar_volumes: Floats = np.full((len(symbols), width), np.nan)
        self.dollar_volumes[rows, cols] = close * volume
        self.last_bar: list[datetime] = [bars[i - 1].ts for i in ends]
        previous = np.full_like(close, np.nan)
        previous[1:] = close[:-1]
        previous[1:][rows[1:] != rows[:-1]] = np.nan  # a symbol's first bar has no return
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = close / previous - 1
        self.returns = pd.DataFrame({"symbol": names, "ts": [b.ts for b in bars], "ret": returns})


def _metric_columns(closes: Floats) -> dict[str, Floats]:
    """Each metric for every symbol (one row of `closes` each), unrounded; NaN when undefined."""
    last = closes[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        columns = {name: last / closes[:, -1 - n] - 1 for name, n in RETURN_BARS.items()}
        log_returns = np.diff(np.log(closes[:, -(VOL_RETURNS + 1) :]), axis=1)
        columns["vol_20d"] = log_returns.std(axis=1, ddof=1) * math.sqrt(TRADING_DAYS)
        columns["drawdown_60d"] = last / closes[:, -DRAWDOWN_BARS:].max(axis=1) - 1
        for name, n in SMA_BARS.items():
            columns[name] = last / closes[:, -n:].mean(axis=1) - 1
    return columns


def _symbol_metrics(
    table: _BarTable, columns: dict[str, Floats], sectors: dict[str, str | None]
) -> list[SymbolMetrics]:
    return [
        SymbolMetrics(
            symbol=symbol,
            sector=sectors.get(symbol),
            last_bar=table.last_bar[i],
            close=float(table.closes[i, -1]),
            **{name: _rounded(values[i]) for name, values in columns.items()},
        )
        for i, symbol in enumerate(table.symbols)
    ]


def _sector_metrics(
    table: _BarTable, columns: dict[str, Floats], sectors: dict[str, str | None]
) -> list[SectorMetrics]:
    """Aggregates over the symbols that have a sector, from unrounded values."""
    of_symbol = np.array([sectors.get(s) for s in table.symbols], dtype=object)
    dist = columns["dist_sma_50"]
    above = np.where(np.isnan(dist), np.nan, (dist > 0).astype(np.float64))
    result = []
    for sector in sorted({s for s in of_symbol if s is not None}):
        members = of_symbol == sector
        result.append(
            SectorMetrics(
                sector=sector,
                symbols=int(members.sum()),
                mean_ret_5d=_mean(columns["ret_5d"][members]),
                mean_ret_20d=_mean(columns["ret_20d"][members]),
                breadth_above_sma_50=_mean(above[members]),
            )
        )
    return result


def _correlation(table: _BarTable, window: int) -> Correlation:
    returns = table.returns.pivot(index="ts", columns="symbol", values="ret")
    recent = returns.sort_index().tail(window).reindex(columns=table.symbols)
    matrix = recent.corr(min_periods=max(3, math.ceil(window / 2))).to_numpy()
    return Correlation(
        window=window,
        symbols=table.symbols,
        matrix=[[_rounded(v) for v in row] for row in matrix],
    )


def _rounded(value: float) -> float | None:
    """Six decimals, None for a missing or undefined value, and no negative zero."""
    if not math.isfinite(value):
        return None
    return round(float(value), PLACES) + 0.0


def _mean(values: Floats) -> float | None:
    """The mean of the defined values, None if there are none."""
    defined = values[~np.isnan(values)]
    return _rounded(float(defined.mean())) if defined.size else None


def _decimal_text(value: Decimal) -> str:
    """Rounded to the columns' 8 places, trailing zeros stripped: 109.25, 49650800, 0."""
    text = format(value.quantize(_PRICE_STEP), "f").rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def _bar_key(bar: BarOut) -> tuple[str, datetime]:
    return bar.symbol, bar.ts
