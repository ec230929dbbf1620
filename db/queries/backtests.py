"""Backtest rows: a run's lifecycle, every parameter set's metrics, the chosen set's trades.

Nothing here commits: the flow's tasks own their units of work. Values
arrive as the engine made them (floats, numpy) and are stored in the
columns' types: prices and money as `Numeric`, non-finite metrics (a
profit factor with no losing trade is infinite) as JSON strings, because
JSON has no NaN or Infinity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from models.backtest import BacktestParamResult, BacktestTrade, Direction, ExitReason
from models.base import utcnow
from models.enums import RunStatus, Timeframe
from models.errors import NotFoundError
from models.ops import Job
from models.strategy import Backtest, Strategy
from models.users import User

if TYPE_CHECKING:  # the realtime app reads runs through here and never loads pandas
    import pandas as pd


def create_backtest(
    session: Session,
    *,
    kind: str,
    strategy: str,
    symbols: Sequence[str],
    start: datetime,
    end: datetime,
    params: Mapping[str, Any],
    config: Mapping[str, Any],
    job_id: int | None = None,
    flow_run_id: str | None = None,
) -> Backtest:
    """A running backtest row, linked to its strategy's row (created on first use)."""
    row = Backtest(
        kind=kind,
        strategy_id=_strategy_id(session, strategy),
        strategy_name=strategy,
        job_id=job_id,
        flow_run_id=flow_run_id,
        status=RunStatus.RUNNING,
        timeframe=Timeframe.D1,
        start=start,
        end=end,
        symbols=list(symbols),
        params=dict(params),
        config=dict(config),
    )
    session.add(row)
    session.flush()
    return row


def complete_backtest(
    session: Session,
    backtest_id: int,
    *,
    metrics: Mapping[str, Any],
    benchmark: Mapping[str, Any],
    best_params: Mapping[str, Any],
    equity: list[list[Any]],
    trades_count: int,
) -> Backtest:
    row = get_backtest(session, backtest_id)
    row.metrics = json_metrics(metrics)
    row.benchmark = json_metrics(benchmark)
    row.best_params = dict(best_params)
    row.equity = equity
    row.trades_count = trades_count
    row.status = RunStatus.COMPLETED
    row.finished_at = utcnow()
    return row


def fail_backtest(session: Session, backtest_id: int, error: str) -> None:
    row = session.get(Backtest, backtest_id)
    if row is not None and row.status is RunStatus.RUNNING:
        row.status = RunStatus.FAILED
        row.error = error[:2000]
        row.finished_at = utcnow()


def add_param_results(
    session: Session,
    backtest_id: int,
    segment: str,
    start: datetime,
    end: datetime,
    table: pd.DataFrame,
    param_names: Sequence[str],
) -> int:
    """One row per parameter set of `table` (its param columns and metric columns)."""
    metric_names = [c for c in table.columns if c not in param_names]
    rows = [
        {
            "backtest_id": backtest_id,
            "segment": segment,
            "start": start,
            "end": end,
            "params": {p: float(record[p]) for p in param_names},
            "metrics": json_metrics({m: record[m] for m in metric_names}),
        }
        for record in table.to_dict("records")
    ]
    if rows:
        session.execute(insert(BacktestParamResult), rows)
    return len(rows)


def add_trades(session: Session, backtest_id: int, trades: pd.DataFrame) -> int:
    """Store the rows of `BacktestResult.trades_frame()`; an open trade keeps no exit."""
    rows = [
        {
            "backtest_id": backtest_id,
            "symbol": t["symbol"],
            "direction": Direction(t["direction"]),
            "entry_ts": t["entry_ts"].to_pydatetime(),
            "entry_price": _money(t["entry_price"]),
            "exit_ts": None if t["exit_reason"] == "open" else t["exit_ts"].to_pydatetime(),
            "exit_price": None if t["exit_reason"] == "open" else _money(t["exit_price"]),
            "qty": _money(t["qty"]),
            "fees": _money(t["fees"]),
            "pnl": _money(t["pnl"]),
            "return_pct": float(t["return_pct"]) if math.isfinite(t["return_pct"]) else 0.0,
            "exit_reason": ExitReason(t["exit_reason"]),
        }
        for t in trades.to_dict("records")
    ]
    if rows:
        session.execute(insert(BacktestTrade), rows)
    return len(rows)


def get_backtest(session: Session, backtest_id: int) -> Backtest:
    row = session.get(Backtest, backtest_id)
    if row is None:
        raise NotFoundError(f"no backtest {backtest_id}")
    return row


def list_backtests(
    session: Session, *, strategy: str | None = None, limit: int = 50, offset: int = 0
) -> list[Backtest]:
    """Newest first."""
    stmt = select(Backtest).order_by(Backtest.id.desc())
    if strategy is not None:
        stmt = stmt.where(Backtest.strategy_name == strategy)
    return list(session.scalars(stmt.offset(offset).limit(limit)))


@dataclass(frozen=True)
class BacktestLine:
    """A stored run as the API lists it: the row, and who asked for it (the job's user;
    None for a run started from the CLI or a flow, which has no job)."""

    backtest: Backtest
    requested_by: str | None


def backtest_lines(
    session: Session,
    *,
    job_id: int | None = None,
    strategy: str | None = None,
    kind: str | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[BacktestLine]:
    """Newest first by creation (`since` inclusive, `until` exclusive), every filter given."""
    stmt = (
        select(Backtest, User.username)
        .outerjoin(Job, Job.id == Backtest.job_id)
        .outerjoin(User, User.id == Job.created_by)
    )
    if job_id is not None:
        stmt = stmt.where(Backtest.job_id == job_id)
    if strategy is not None:
        stmt = stmt.where(Backtest.strategy_name == strategy)
    if kind is not None:
        stmt = stmt.where(Backtest.kind == kind)
    if status is not None:
        stmt = stmt.where(Backtest.status == status)
    if since is not None:
        stmt = stmt.where(Backtest.created_at >= since)
    if until is not None:
        stmt = stmt.where(Backtest.created_at < until)
    stmt = stmt.order_by(Backtest.created_at.desc(), Backtest.id.desc()).offset(offset).limit(limit)
    return [BacktestLine(row, name) for row, name in session.execute(stmt).tuples()]


def backtest_line(session: Session, backtest_id: int) -> BacktestLine:
    """One run and who asked for it; `NotFoundError` if there is no such run."""
    row = get_backtest(session, backtest_id)
    name = session.scalar(
        select(User.username).join(Job, Job.created_by == User.id).where(Job.id == row.job_id)
    )
    return BacktestLine(row, name)


def count_param_results(session: Session, backtest_id: int) -> int:
    stmt = select(func.count()).where(BacktestParamResult.backtest_id == backtest_id)
    return int(session.scalar(stmt) or 0)


def backtest_trades(
    session: Session, backtest_id: int, *, limit: int = 100, offset: int = 0
) -> list[BacktestTrade]:
    """In entry order."""
    get_backtest(session, backtest_id)
    stmt = (
        select(BacktestTrade)
        .where(BacktestTrade.backtest_id == backtest_id)
        .order_by(BacktestTrade.entry_ts, BacktestTrade.id)
        .offset(offset)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def param_results(
    session: Session,
    backtest_id: int,
    *,
    segment: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[BacktestParamResult]:
    get_backtest(session, backtest_id)
    stmt = select(BacktestParamResult).where(BacktestParamResult.backtest_id == backtest_id)
    if segment is not None:
        stmt = stmt.where(BacktestParamResult.segment == segment)
    stmt = stmt.order_by(BacktestParamResult.id).offset(offset).limit(limit)
    return list(session.scalars(stmt))


def count_trades(session: Session, backtest_id: int) -> int:
    stmt = select(func.count()).where(BacktestTrade.backtest_id == backtest_id)
    return int(session.scalar(stmt) or 0)


def json_metrics(values: Mapping[str, Any]) -> dict[str, Any]:
    """Metrics as JSON can hold them: numbers, and "nan" / "inf" / "-inf" as strings."""
    return {k: _json_number(v) for k, v in values.items()}


def _json_number(value: Any) -> Any:
    if isinstance(value, bool | str) or value is None:
        return value
    number = float(value)
    if math.isfinite(number):
        return int(number) if isinstance(value, int) or _is_int(value) else number
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


def _is_int(value: Any) -> bool:
    return hasattr(value, "dtype") and value.dtype.kind in "iu"


def _money(value: float) -> Decimal:
    return Decimal(repr(round(float(value), 8)))


def _strategy_id(session: Session, name: str) -> int:
    row = session.scalar(select(Strategy).where(Strategy.name == name))
    if row is None:
        row = Strategy(name=name, kind="vectorised", params={})
        session.add(row)
        session.flush()
    return row.id
