"""The backtest vocabulary: how a run is configured, what it reports, and its stored trades.

The engine itself (tasks/backtest/) computes in float64 arrays: a vectorised
simulation over thousands of columns cannot carry `Decimal`s, and its results
are research, not money (docs/decisions/0011). What reaches the database is
rounded to the `PRICE`/`QTY`/`MONEY` columns like every other price.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MONEY, PRICE, QTY, Base, BigId, IdMixin
from models.days import Day
from models.enums import Direction as Direction  # declared there for the CLI
from models.enums import SizingMode as SizingMode
from models.errors import NotFoundError


class FillTiming(StrEnum):
    NEXT_OPEN = "next_open"
    """A signal computed on bar t's close fills at bar t+1's open: no look-ahead."""
    SIGNAL_CLOSE = "signal_close"
    """Fill at the signal bar's own close. Optimistic: the close that made the signal is
    assumed tradable. Needs `allow_same_bar_fill=True` and logs a warning."""


class ExitReason(StrEnum):
    """Why a trade ended; the engine's codes are this enum's order (tasks/backtest/records.py)."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"
    END_OF_DATA = "end_of_data"
    """The symbol's data ended before the backtest did (a delisting): closed at its last close."""
    OPEN = "open"
    """Still open on the backtest's last bar; marked at that close, not closed."""
    WINDOW_END = "window_end"
    """A walk-forward test window ended with the trade open. Closed at that window's last
    close (no exit fee): the next window starts flat, so the mark is the trade's result.
    Never made by the engine; the walk-forward's stitching relabels such trades."""


BUILTIN_STRATEGIES = ("sma_cross", "rsi_reversion", "macd", "bollinger_breakout")
"""The strategies tasks/backtest/strategies.py ships (a test checks the two agree)."""


def require_strategy_name(name: str) -> None:
    """Refuse a name that is neither a built-in nor `package.module:function`: the one
    words the CLI (before Prefect starts) and the strategy registry both use."""
    if name not in BUILTIN_STRATEGIES and ":" not in name:
        raise NotFoundError(
            f"no strategy {name!r}: built-ins are {', '.join(BUILTIN_STRATEGIES)}, "
            "or name your own as package.module:function"
        )


Fraction = Annotated[float, Field(gt=0, lt=1)]


class Costs(BaseModel):
    """Trading costs, applied to every fill (entries, exits and stops)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fee_bps: float = Field(0.0, ge=0, le=1_000, description="Commission, basis points of notional.")
    fee_fixed: float = Field(0.0, ge=0, le=1_000, description="Commission per fill, currency.")
    slippage_bps: float = Field(
        0.0, ge=0, le=1_000, description="Price moved against the order, basis points."
    )


class Sizing(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: SizingMode = SizingMode.EQUITY_FRACTION
    value: float = Field(1.0, gt=0, le=1e9)
    fractional: bool = Field(True, description="False: whole shares only (rounded down).")

    @model_validator(mode="after")
    def _fraction_at_most_one(self) -> Sizing:
        if self.mode is SizingMode.EQUITY_FRACTION and self.value > 1:
            raise ValueError("an equity fraction above 1 would need leverage; use <= 1")
        return self


class Stops(BaseModel):
    """Exits evaluated inside each bar on its high and low, as fractions of the entry price.

    When a bar's range touches both the stop and the take-profit, the stop is
    assumed to have come first (the pessimistic order; daily bars cannot tell).
    A bar that opens beyond a level exits at that open, not at the level.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    stop_loss: Fraction | None = None
    take_profit: Annotated[float, Field(gt=0, le=100)] | None = None
    trailing_stop: Fraction | None = None


class BacktestConfig(BaseModel):
    """Everything about a simulation except the strategy and the data."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    init_cash: float = Field(100_000.0, gt=0, le=1e12)
    costs: Costs = Field(default_factory=Costs)
    sizing: Sizing = Field(default_factory=Sizing)
    stops: Stops = Field(default_factory=Stops)
    direction: Direction = Direction.LONG
    shared_cash: bool = Field(
        False,
        description="One cash pool for all symbols of a parameter set; else init_cash per symbol.",
    )
    fill: FillTiming = FillTiming.NEXT_OPEN
    allow_same_bar_fill: bool = Field(
        False, description="Required for fill=signal_close, which trades on the signal bar."
    )
    periods_per_year: int = Field(252, ge=1, le=525_600)

    @model_validator(mode="after")
    def _same_bar_fill_is_explicit(self) -> BacktestConfig:
        if self.fill is FillTiming.SIGNAL_CLOSE and not self.allow_same_bar_fill:
            raise ValueError(
                "fill=signal_close trades on the close that produced the signal (look-ahead); "
                "set allow_same_bar_fill=true to accept that"
            )
        return self


class Metrics(BaseModel):
    """Summary of one equity curve and its trades (tasks/backtest/metrics.py defines each).

    `trades`, `win_rate`, `profit_factor` and `expectancy` count closed trades; the
    trades still open at the end are `open_trades`, their P&L marked at the last close
    `open_pnl`. Closed P&L (`expectancy * trades`) plus `open_pnl` is the curve's P&L.
    """

    model_config = ConfigDict(frozen=True)

    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    max_drawdown: float
    max_drawdown_duration: int = Field(description="Bars from a peak to its recovery (or the end).")
    calmar: float
    win_rate: float
    profit_factor: float
    expectancy: float
    exposure: float
    turnover: float
    trades: int = Field(description="Closed trades.")
    open_trades: int = Field(description="Trades still open on the last bar.")
    open_pnl: float = Field(description="The open trades' P&L, marked at the last close.")
    final_equity: float


class BacktestRequest(BaseModel):
    """A backtest as the CLI, the API's `backtest` job and the flow take it."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z_][A-Za-z0-9_.:]*$",
        description="A built-in name (sma_cross, rsi_reversion, macd, bollinger_breakout) "
        "or `package.module:function` of your own signal function.",
    )
    params: dict[str, float | list[float]] = Field(
        default_factory=dict,
        description="A value per parameter, or a list of values: lists make a grid sweep.",
    )
    symbols: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        min_length=1, max_length=1_000
    )
    start: Day
    end: Day
    config: BacktestConfig = Field(default_factory=BacktestConfig)
    walk_forward: WalkForward | None = None
    optimise: str = Field("sharpe", description="The metric a sweep ranks by (higher is better).")

    @model_validator(mode="after")
    def _ordered(self) -> BacktestRequest:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        if self.optimise not in Metrics.model_fields:
            raise ValueError(f"optimise: unknown metric {self.optimise!r}")
        return self


class WalkForward(BaseModel):
    """Optimise on `train` bars, evaluate the winner on the next `test` bars, step by `test`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: int = Field(ge=20, le=100_000, description="In-sample window, bars.")
    test: int = Field(ge=5, le=100_000, description="Out-of-sample window, bars.")
    window: Literal["rolling", "expanding"] = "rolling"


BacktestRequest.model_rebuild()


class BacktestTrade(IdMixin, Base):
    """One round trip of a stored backtest: entry and exit bar, prices, size, P&L, why it ended."""

    __tablename__ = "backtest_trades"
    __table_args__ = (Index("ix_backtest_trades_backtest_id_symbol", "backtest_id", "symbol"),)

    backtest_id: Mapped[int] = mapped_column(BigId, ForeignKey("backtests.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    direction: Mapped[Direction]
    entry_ts: Mapped[datetime]
    entry_price: Mapped[Decimal] = mapped_column(PRICE)
    exit_ts: Mapped[datetime | None]
    exit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    qty: Mapped[Decimal] = mapped_column(QTY)
    fees: Mapped[Decimal] = mapped_column(MONEY)
    pnl: Mapped[Decimal] = mapped_column(MONEY)
    return_pct: Mapped[float]
    exit_reason: Mapped[ExitReason]


class BacktestParamResult(IdMixin, Base):
    """One parameter set's metrics over one segment of a backtest.

    `segment` is `full` for a single run or a sweep, and `wf{n}:in` /
    `wf{n}:out` for walk-forward window n's in-sample optimisation and its
    out-of-sample evaluation (only the winner is evaluated out of sample).
    """

    __tablename__ = "backtest_param_results"
    __table_args__ = (
        Index("ix_backtest_param_results_backtest_id_segment", "backtest_id", "segment"),
    )

    backtest_id: Mapped[int] = mapped_column(BigId, ForeignKey("backtests.id", ondelete="CASCADE"))
    segment: Mapped[str] = mapped_column(String(32))
    start: Mapped[datetime]
    end: Mapped[datetime]
    params: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
