"""News scores and symbol sentiment: what the scorers said of each item, and per symbol and time.

* `news_scores`: one row per (item, scorer). A scorer's name says which model
  (by its directory and content hash) or the lexicon made the number, so rows
  of two scorers never mix unnoticed. A score is a function of the text and
  the scorer alone, so scoring an old item late does not break point in time.
* `symbol_sentiment`: the sentiment of a symbol as of an instant, computed
  from the items known by then (services/sentiment/aggregate.py gives the
  formulas), stored by the `sentiment_analysis` flow for each run and each
  backfill step. `GET /api/sentiment` computes the same figures for any
  `as_of` from the scores; the stored rows are the history a chart draws and
  what the `sentiment` WebSocket topic pushes.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, CreatedMixin, IdMixin

MAX_BACKFILL_STEPS = 10_000  # a backfill's stored figures per symbol, at most


def backfill_steps(start: date, end: date, step_hours: float) -> int:
    """How many figures a backfill from `start`'s midnight to `end`'s end (UTC) stores."""
    span = timedelta(days=(end - start).days + 1)
    return int(span / timedelta(hours=step_hours))


class NewsScore(Base):
    """One scorer's view of one item."""

    __tablename__ = "news_scores"

    news_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("news.id", ondelete="CASCADE"), primary_key=True
    )
    scorer: Mapped[str] = mapped_column(String(128), primary_key=True)
    score: Mapped[float]  # -1..1: P(positive) - P(negative), or the lexicon's compound
    label: Mapped[str] = mapped_column(String(16))
    scored_at: Mapped[datetime]


class SymbolSentimentRow(IdMixin, CreatedMixin, Base):
    """A symbol's sentiment as of `as_of` by one scorer; once per (symbol, as_of, scorer)."""

    __tablename__ = "symbol_sentiment"
    __table_args__ = (
        UniqueConstraint("symbol", "as_of", "scorer"),
        Index("ix_symbol_sentiment_symbol_as_of", "symbol", "as_of"),
    )

    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    as_of: Mapped[datetime]
    scorer: Mapped[str] = mapped_column(String(128))
    score: Mapped[float]
    count: Mapped[int]
    dispersion: Mapped[float]
    change: Mapped[float | None]
    first_known_at: Mapped[datetime]
    last_known_at: Mapped[datetime]
    half_life_h: Mapped[float]
    window_h: Mapped[float]


class SentimentParams(BaseModel):
    """How items are weighed into a symbol's sentiment (the SENTIMENT_* settings)."""

    model_config = ConfigDict(frozen=True)

    half_life_h: float = Field(24.0, gt=0, description="An item's weight halves every this long.")
    window_h: float = Field(168.0, gt=0, description="Items known this long before count.")
    change_h: float = Field(24.0, gt=0, description="`change` is against this long before.")


class SymbolSentiment(BaseModel):
    """A symbol's news sentiment as of an instant; `count` 0 means no news, every figure None."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    symbol: str
    as_of: datetime
    scorer: str | None = Field(description="Whose scores: a model (dir@hash) or the lexicon.")
    score: float | None = Field(
        description="-1..1: the items' scores, each weighted by 0.5 ** (age / half-life)."
    )
    count: int = Field(description="Items known in the window before as_of.")
    dispersion: float | None = Field(description="Weighted standard deviation of the scores.")
    change: float | None = Field(
        description="score minus the score `change_h` hours before (None: no items then)."
    )
    first_known_at: datetime | None = Field(description="The oldest item counted: from when.")
    last_known_at: datetime | None = Field(description="The newest item counted.")
    half_life_h: float
    window_h: float


class ScoredNews(BaseModel):
    """An item's score as the news list shows it."""

    model_config = ConfigDict(frozen=True)

    score: float
    label: str
    scorer: str


class SentimentReport(BaseModel):
    """Several symbols' sentiment as of one instant, by one scorer."""

    model_config = ConfigDict(frozen=True)

    as_of: datetime
    scorer: str | None = Field(
        description="The scorer whose scores are read: the one that scored most of the "
        "window's items (None: no scored item)."
    )
    half_life_h: float
    window_h: float
    change_h: float
    items: int = Field(description="Distinct items counted across the symbols.")
    symbols: list[SymbolSentiment]
