"""The market snapshot a council run reasons about: numbers as of one instant, and their hash.

Every figure is computed from bars known at `as_of` (point in time), so the
same inputs give the same snapshot and the same `data_hash`; a run records
the hash, which is how an auditor knows which data a decision saw. Returns
are simple returns over trading bars (1d = the last bar over the one before);
volatility is the annualised standard deviation of daily log returns
(sqrt(252)); drawdown is from the highest close of the lookback window;
`dist_sma_*` is close / SMA - 1; `dollar_volume_20d` is the mean of close x
volume over the last 20 bars.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from models.market import Symbol


class SymbolMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    symbol: Symbol
    sector: str | None = None
    last_bar: datetime = Field(description="Start of the newest bar used (known at its end).")
    close: float
    ret_1d: float | None = None
    ret_5d: float | None = None
    ret_7d: float | None = None
    ret_20d: float | None = None
    vol_20d: float | None = Field(None, description="Annualised, from 20 daily log returns.")
    drawdown_60d: float | None = Field(None, description="close / max close of 60 bars - 1.")
    dist_sma_20: float | None = None
    dist_sma_50: float | None = None
    dollar_volume_20d: float | None = Field(
        None, description="Mean close x volume of the last 20 bars (liquidity)."
    )


class SectorMetrics(BaseModel):
    model_config = ConfigDict(frozen=True)

    sector: str
    symbols: int
    mean_ret_5d: float | None = None
    mean_ret_20d: float | None = None
    breadth_above_sma_50: float | None = Field(
        None, description="Share of the sector's symbols closing above their 50-bar SMA."
    )


class Correlation(BaseModel):
    """Pairwise correlation of daily returns over the last `window` bars, symbols in order."""

    model_config = ConfigDict(frozen=True)

    window: int
    symbols: list[str]
    matrix: list[list[float | None]]


class SymbolNews(BaseModel):
    """One symbol's news sentiment in a snapshot (services/sentiment/aggregate.py)."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    score: float = Field(description="-1..1, recent items weighing more (half-life).")
    count: int
    dispersion: float
    change: float | None
    first_known_at: datetime
    last_known_at: datetime


class NewsSentiment(BaseModel):
    """What the news said of the snapshot's symbols, from items known by its `as_of` only."""

    model_config = ConfigDict(frozen=True)

    summary: str = Field(description="The figures below in one sentence: how many, from when.")
    scorer: str = Field(description="Whose scores: a model (dir@hash) or the lexicon.")
    items: int = Field(description="Distinct news items counted, over the whole universe.")
    first_known_at: datetime = Field(description="The oldest item counted: from when.")
    last_known_at: datetime
    half_life_h: float
    window_h: float
    symbols: list[SymbolNews] = Field(description="The symbols with news; the others had none.")
    sentiment_hash: str = Field(description="sha256 of every symbol's figures as of as_of.")


class MarketSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    as_of: datetime
    knowledge_cutoff: datetime = Field(description="Bars stamped at or before this were usable.")
    universe: list[str]
    missing: list[str] = Field(default_factory=list, description="Asked for, but no bars.")
    symbols: list[SymbolMetrics]
    sectors: list[SectorMetrics]
    correlation: Correlation
    bars_used: int
    data_hash: str = Field(description="sha256 of the exact bars used (symbol, ts, OHLCV).")
    news_sentiment: NewsSentiment | None = Field(
        None, description="None when no scored news was known at as_of (then not serialised)."
    )

    @model_serializer(mode="wrap")
    def _without_absent_news(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """No news, no key: a snapshot, and so a council prompt and its cache key, stays
        byte for byte what it was before news existed."""
        data: dict[str, Any] = handler(self)
        if data.get("news_sentiment", 0) is None:
            del data["news_sentiment"]
        return data


class PeriodReturn(BaseModel):
    """One symbol's return over `days` calendar days.

    None where a close is not known: `close` when the symbol has no bar in the period or
    the 14 days before it (it no longer trades: its last week has no return), `base_close`
    when its history starts inside the period."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    close: Decimal | None = Field(description="The last close known at as_of.")
    last_bar: datetime | None = Field(description="Start of that close's bar.")
    base_close: Decimal | None = Field(description="The last close known `days` days earlier.")
    base_bar: datetime | None
    ret: float | None = Field(description="close / base_close - 1, 6 decimals.")


class MarketMetrics(BaseModel):
    """N-day returns per symbol and the correlation matrix of daily returns."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime = Field(description="The instant the figures are as of (a day's end).")
    days: int
    returns: list[PeriodReturn]
    correlation: Correlation
    missing: list[str] = Field(description="Asked for, but no bar known at as_of.")
    data_hash: str = Field(description="sha256 of the bars the correlation used (as a snapshot).")
