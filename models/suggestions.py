"""Suggestions: the strategy engine's scored view on a symbol, one per pattern signal.

A suggestion joins what fired (the pattern signal), what the models said about
the same window (forecaster, pattern classifier, each by version) and the
symbol's latest sentiment, into a direction, a confidence and each input's
share of the score (realtime/strategy/). `degraded` says in words when it was
made from fewer inputs than configured (no model active, models paused by the
circuit breaker) so a reader never mistakes a signals-only view for the whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, CreatedMixin, IdMixin

DIRECTIONS = ("buy", "sell", "hold")


class Suggestion(IdMixin, CreatedMixin, Base):
    """One per signal (its symbol, kind and event time): a replayed signal adds nothing."""

    __tablename__ = "suggestions"
    __table_args__ = (
        UniqueConstraint("symbol", "signal_kind", "signal_ts"),
        Index("ix_suggestions_symbol_ts", "symbol", "ts"),
        Index("ix_suggestions_ts", "ts"),
    )

    symbol: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]  # the newest tick the models saw: what the suggestion is as of
    signal_kind: Mapped[str] = mapped_column(String(32))
    signal_ts: Mapped[datetime]
    direction: Mapped[str] = mapped_column(String(8))
    score: Mapped[float]  # in [-1, 1]: the weighted inputs, positive for buy
    confidence: Mapped[float]  # |score|
    horizon: Mapped[int | None]  # bars ahead the models looked; None from a signal alone
    contributions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    degraded: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None]


class SuggestionOut(BaseModel):
    """A suggestion as the API and the `suggestions` WebSocket topic show it."""

    model_config = ConfigDict(from_attributes=True)

    id: int | None = Field(None, description="None on the live feed before the row is written.")
    symbol: str
    ts: datetime
    signal_kind: str
    signal_ts: datetime
    direction: str = Field(description="buy, sell or hold")
    score: float = Field(description="-1..1, the sum of the contributions; positive for buy")
    confidence: float = Field(description="|score|")
    horizon: int | None = Field(None, description="Bars ahead the models looked.")
    contributions: dict[str, float | None] = Field(
        description="Each input's weighted share of the score; null for an input not present."
    )
    inputs: dict[str, Any] = Field(description="What each input said, and model versions.")
    degraded: str | None = Field(None, description="Why fewer inputs than configured were used.")
    latency_ms: float | None = Field(None, description="From the signal's publication to this.")
