"""What the backtest read routes answer: a stored run, and in detail everything it stored.

Prices, quantities, fees and P&L of trades are `Decimal` (JSON strings), as stored.
Metrics are the engine's floats; one JSON cannot hold (a profit factor with no losing
trade is infinite) is the string "inf", "-inf" or "nan", as `json_metrics` stored it.
The equity curve's points are floats: a curve to draw, not money to add up.

A run's detail carries at most `DETAIL_ROWS` parameter sets and trades, with each
list's full count beside it, so one huge sweep cannot make one huge answer.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from db.queries.backtests import BacktestLine
from models.backtest import BacktestParamResult, BacktestTrade, Direction, ExitReason
from models.enums import RunStatus

DETAIL_ROWS = 2_000
BacktestKind = Literal["single", "sweep", "walk_forward"]
MetricValue = int | float | str
Metrics = dict[str, MetricValue]


class BacktestOut(BaseModel):
    """A stored run: what was asked, where it stands, and its chosen set's summary."""

    id: int
    job_id: int | None = Field(description="The job that ran it; null for a CLI run.")
    requested_by: str | None = Field(description="The job's user; null without a job.")
    kind: BacktestKind = Field(description="single, sweep (lists in params) or walk_forward.")
    strategy: str | None
    status: RunStatus
    symbols: list[str]
    start: date
    end: date
    params: dict[str, Any] = Field(description="As asked: a list of values sweeps.")
    best_params: dict[str, Any] | None = Field(description="The chosen set, once completed.")
    metrics: Metrics | None = Field(description="The chosen set's, once completed.")
    benchmark: Metrics | None = Field(description="Buy-and-hold's over the same bars.")
    trades_count: int = Field(description="Closed trades of the chosen set.")
    error: str | None = Field(description="Why a failed run failed, in words.")
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, line: BacktestLine) -> BacktestOut:
        row = line.backtest
        return cls(
            id=row.id,
            job_id=row.job_id,
            requested_by=line.requested_by,
            kind=row.kind,  # the flow writes only these three
            strategy=row.strategy_name,
            status=row.status,
            symbols=[str(s) for s in row.symbols],
            start=row.start.date(),
            end=row.end.date(),
            params=row.params,
            best_params=row.best_params,
            metrics=row.metrics,
            benchmark=row.benchmark,
            trades_count=row.trades_count,
            error=row.error,
            created_at=_utc(row.created_at),
            finished_at=_utc(row.finished_at) if row.finished_at else None,
        )


class ParamResultOut(BaseModel):
    """One parameter set's metrics over one segment (`full`, or `wf{n}:in` / `wf{n}:out`)."""

    segment: str
    start: date
    end: date
    params: dict[str, float]
    metrics: Metrics

    @classmethod
    def of(cls, row: BacktestParamResult) -> ParamResultOut:
        return cls(
            segment=row.segment,
            start=row.start.date(),
            end=row.end.date(),
            params=row.params,
            metrics=row.metrics,
        )


class BacktestTradeOut(BaseModel):
    """One round trip of the chosen set; an open one has no exit yet."""

    symbol: str
    direction: Direction
    entry_ts: datetime
    entry_price: Decimal
    exit_ts: datetime | None
    exit_price: Decimal | None
    qty: Decimal
    fees: Decimal
    pnl: Decimal = Field(description="After fees; an open trade's marked at the last close.")
    return_pct: float
    exit_reason: ExitReason

    @classmethod
    def of(cls, row: BacktestTrade) -> BacktestTradeOut:
        return cls(
            symbol=row.symbol,
            direction=row.direction,
            entry_ts=_utc(row.entry_ts),
            entry_price=row.entry_price,
            exit_ts=_utc(row.exit_ts) if row.exit_ts else None,
            exit_price=row.exit_price,
            qty=row.qty,
            fees=row.fees,
            pnl=row.pnl,
            return_pct=row.return_pct,
            exit_reason=row.exit_reason,
        )


class EquityPointOut(BaseModel):
    """The chosen set's equity and buy-and-hold's at one bar's close."""

    ts: datetime
    equity: float | None
    benchmark: float | None


class BacktestDetailOut(BacktestOut):
    """A run with everything it stored."""

    config: dict[str, Any] = Field(description="Costs, sizing, stops, fills (BacktestConfig).")
    equity: list[EquityPointOut] = Field(description="Oldest first; empty until completed.")
    param_results: list[ParamResultOut] = Field(
        description=f"Every set's metrics per segment, as stored; at most {DETAIL_ROWS}."
    )
    param_results_total: int
    trades: list[BacktestTradeOut] = Field(
        description=f"The chosen set's trades in entry order; at most {DETAIL_ROWS}."
    )
    trades_total: int = Field(description="Every stored trade, open ones included.")

    @classmethod
    def of_run(
        cls,
        line: BacktestLine,
        results: list[BacktestParamResult],
        results_total: int,
        trades: list[BacktestTrade],
        trades_total: int,
    ) -> BacktestDetailOut:
        return cls(
            **dict(BacktestOut.of(line)),
            config=line.backtest.config,
            equity=[_point(p) for p in line.backtest.equity or []],
            param_results=[ParamResultOut.of(r) for r in results],
            param_results_total=results_total,
            trades=[BacktestTradeOut.of(t) for t in trades],
            trades_total=trades_total,
        )


def _point(stored: list[Any]) -> EquityPointOut:
    ts, equity, benchmark = stored
    return EquityPointOut(
        ts=_utc(datetime.fromisoformat(ts)), equity=_finite(equity), benchmark=_finite(benchmark)
    )


def _finite(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _utc(value: datetime) -> datetime:
    """Stored instants are UTC; SQLite gives them back naive."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
