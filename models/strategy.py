"""Strategies, the signals they emit, and backtests of them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
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
    """A strategy's view on a symbol at a bar or tick; one per strategy, symbol, timeframe,
    kind and ts.

    `kind` names the pattern that fired (`zscore_breakout`, ...); bar strategies
    that emit one kind of signal leave it empty. `ts` is the event time of the
    bar or tick the signal was computed from, so a replay re-inserts nothing.
    """

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("strategy_id", "symbol", "timeframe", "kind", "ts"),
        Index("ix_signals_ts", "ts"),
        Index("ix_signals_symbol_ts", "symbol", "ts"),
    )

    strategy_id: Mapped[int] = mapped_column(BigId, ForeignKey("strategies.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    timeframe: Mapped[Timeframe]
    kind: Mapped[str] = mapped_column(String(32), default="", server_default="")
    ts: Mapped[datetime]
    side: Mapped[Side]
    strength: Mapped[Decimal] = mapped_column(RATIO)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Backtest(IdMixin, CreatedMixin, Base):
    """One backtest run: its inputs, its status and its summary metrics.

    `kind` is `single`, `sweep` or `walk_forward`. `metrics` are the chosen
    parameter set's (a sweep's best, a walk-forward's stitched out-of-sample
    run), `benchmark` buy-and-hold's over the same bars, `equity` both curves
    as `[ts, equity, benchmark]` rows. Every parameter set's metrics are in
    `backtest_param_results`, the chosen set's trades in `backtest_trades`.
    """

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
    kind: Mapped[str] = mapped_column(String(16), default="single", server_default="single")
    strategy_name: Mapped[str | None] = mapped_column(String(200))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    best_params: Mapped[dict[str, Any] | None]
    benchmark: Mapped[dict[str, Any] | None]
    equity: Mapped[list[Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    finished_at: Mapped[datetime | None]


class SignalOut(BaseModel):
    """A signal as the dashboard lists it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    strategy_id: int
    symbol: str
    timeframe: Timeframe
    kind: str
    side: Side
    strength: float
    ts: datetime
    payload: dict[str, Any]
