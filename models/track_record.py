"""The council judged by outcome: council backtests, their sittings and trades, and every
pitch's and reviewer's score against what the market did next.

A council backtest (`council_backtests`) sits the council at each rebalance
day of a past range (`council_backtest_sittings`, one council run each),
executes the decisions over the stored bars and keeps each lot's fate
(`council_backtest_trades`) beside two baselines run the same way. Pitch
outcomes (`pitch_outcomes`) and reviewer scores (`reviewer_scores`) belong to
the pitches and council runs they judge, whoever sat them, so a member's
track record spans backtests and live weeks alike.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MONEY, PRICE, QTY, Base, BigId, CreatedMixin, IdMixin
from models.enums import RunStatus, Side


class CouncilBacktest(IdMixin, CreatedMixin, Base):
    """One council backtest: its inputs, progress, results and what to be wary of.

    `metrics` maps a book (`council`, `buy_and_hold`, `momentum`, and with
    `anonymise` `council_anon`) to its `Metrics`; `equity` is `[ts, council,
    buy_and_hold, momentum]` rows (and `council_anon` fifth); `report` holds the
    bias report, the cutoff split and the comparison of the two modes.
    """

    __tablename__ = "council_backtests"

    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id"))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[RunStatus] = mapped_column(default=RunStatus.RUNNING)
    start: Mapped[datetime]
    end: Mapped[datetime]
    universe: Mapped[list[Any]] = mapped_column(default=list)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sittings: Mapped[int] = mapped_column(default=0)
    sittings_done: Mapped[int] = mapped_column(default=0)
    budget_usd: Mapped[Decimal | None] = mapped_column(MONEY)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    requests: Mapped[int] = mapped_column(default=0)  # calls that reached a model
    cache_hits: Mapped[int] = mapped_column(default=0)
    metrics: Mapped[dict[str, Any] | None]
    equity: Mapped[list[Any] | None]
    report: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class CouncilBacktestSitting(IdMixin, CreatedMixin, Base):
    """One rebalance day of a council backtest and the council run that sat it (two with
    `anonymise`: the plain sitting and the anonymised one)."""

    __tablename__ = "council_backtest_sittings"
    __table_args__ = (UniqueConstraint("backtest_id", "as_of", "anonymised"),)

    backtest_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("council_backtests.id", ondelete="CASCADE")
    )
    as_of: Mapped[datetime]
    anonymised: Mapped[bool] = mapped_column(default=False)  # sat with aliases, beside
    council_run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("council_runs.id"))
    status: Mapped[RunStatus]
    decisions: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    requests: Mapped[int] = mapped_column(default=0)
    cache_hits: Mapped[int] = mapped_column(default=0)
    cutoff_flags: Mapped[list[Any]] = mapped_column(default=list)  # members who may know
    detail: Mapped[str | None] = mapped_column(Text)


class CouncilBacktestTrade(IdMixin, Base):
    """A decision of a sitting as the backtest executed it (or why it did not)."""

    __tablename__ = "council_backtest_trades"

    backtest_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("council_backtests.id", ondelete="CASCADE")
    )
    book: Mapped[str] = mapped_column(String(16))  # council | council_anon | buy_and_hold | ...
    decision_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("council_decisions.id"))
    decided_at: Mapped[datetime]
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[Side]
    weight: Mapped[Decimal] = mapped_column(PRICE)
    qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    entry_ts: Mapped[datetime | None]
    entry_price: Mapped[Decimal | None] = mapped_column(PRICE)
    exit_ts: Mapped[datetime | None]
    exit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    pnl: Mapped[Decimal | None] = mapped_column(MONEY)
    return_pct: Mapped[float | None]
    exit_reason: Mapped[str | None] = mapped_column(String(16))
    refused: Mapped[str | None] = mapped_column(Text)


class PitchOutcome(IdMixin, CreatedMixin, Base):
    """What happened to a pitch over its horizon: which exit came first, and its return
    against the universe's over the same days. Scored from stored bars only."""

    __tablename__ = "pitch_outcomes"

    pitch_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("pitches.id", ondelete="CASCADE"), unique=True
    )
    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("council_runs.id", ondelete="CASCADE"))
    member: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[Side]
    as_of: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # take_profit | stop_loss | horizon
    entry_price: Mapped[Decimal] = mapped_column(PRICE)
    exit_price: Mapped[Decimal] = mapped_column(PRICE)
    exit_at: Mapped[datetime]
    days: Mapped[int]
    ret: Mapped[float]
    universe_ret: Mapped[float]
    excess: Mapped[float]
    approved: Mapped[bool] = mapped_column(default=False)  # the chairman took it
    may_know: Mapped[bool] = mapped_column(default=False)  # as_of before the model's cutoff


class ReviewerScore(IdMixin, CreatedMixin, Base):
    """How well one reviewer's scores of a sitting's pitches ranked their realised returns
    (Spearman's rank correlation of score against excess return)."""

    __tablename__ = "reviewer_scores"
    __table_args__ = (UniqueConstraint("run_id", "reviewer"),)

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("council_runs.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(100))
    model: Mapped[str] = mapped_column(String(100))
    as_of: Mapped[datetime]
    pitches: Mapped[int]
    rank_corr: Mapped[float | None]  # None: fewer than 3 pitches, or no spread to rank
    may_know: Mapped[bool] = mapped_column(default=False)
