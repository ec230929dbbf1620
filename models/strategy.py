"""Strategies, the signals they emit, and backtests of them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import RATIO, Base, BigId, CreatedMixin, IdMixin
from models.enums import RunStatus, Side, Timeframe


class Strategy(IdMixin, CreatedMixin, Base):
    """A named, parameterised rule set (`sma_cross`, `pattern_breakout`)."""

    __tablename__ = "strategies"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    description: Mapped[str | None] = mapped_column(Text)


class Signal(IdMixin, CreatedMixin, Base):
    """A strategy's view on a symbol at a bar; one per strategy, symbol, timeframe and ts."""

    __tablename__ = "signals"
    __table_args__ = (UniqueConstraint("strategy_id", "symbol", "timeframe", "ts"),)

    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    timeframe: Mapped[Timeframe]
    ts: Mapped[datetime]
    side: Mapped[Side]
    strength: Mapped[Decimal] = mapped_column(RATIO)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Backtest(IdMixin, CreatedMixin, Base):
    """One backtest run: its inputs, its status and its summary metrics."""

    __tablename__ = "backtests"

    strategy_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("strategies.id"))
    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id"))
    status: Mapped[RunStatus] = mapped_column(default=RunStatus.PENDING)
    timeframe: Mapped[Timeframe]
    start: Mapped[datetime]
    end: Mapped[datetime]
    symbols: Mapped[list[Any]] = mapped_column(default=list)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any] | None]
    trades_count: Mapped[int] = mapped_column(default=0)
