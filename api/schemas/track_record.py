"""What the track-record routes answer: each member's rolling skill, council backtests, their
sittings and the trades of each book.

Money, prices and quantities are `Decimal` (JSON strings), as stored. A book's metrics
are the engine's floats as `json_metrics` stored them: one JSON cannot hold (an infinite
profit factor) is the string "inf", "-inf" or "nan". A rate, mean or return that is not
a finite number (nothing to average, or a NaN stored by a degenerate bar) is null, like
an equity point's: a figure to read or draw, never a string in a number's place.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from models.enums import RunStatus, Side
from models.track_record import CouncilBacktest, CouncilBacktestSitting


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


Figure = Annotated[float | None, BeforeValidator(_finite)]
"""A float, or null when there is none or it is not finite (NaN, inf)."""

Book = Literal["council", "council_anon", "buy_and_hold", "momentum"]
By = Literal["member", "model"]
MetricValue = int | float | str | None


class SkillOut(BaseModel):
    """One member's (or, by model, one model's) record over its last `window` scored
    sittings: its pitches against the universe over each pitch's horizon, its reviews as
    rank correlations of its scores with what followed."""

    member: str = Field(description="The seat; with by=model, the model again.")
    model: str
    pitches: int = Field(description="Scored pitches in the window.")
    hit_rate: Figure = Field(description="Share of pitches that beat the universe.")
    mean_excess: Figure = Field(description="Mean return over the universe's, per pitch.")
    take_profit_rate: Figure = Field(description="Share of pitches whose take-profit hit first.")
    stop_loss_rate: Figure = Field(description="Share of pitches whose stop-loss hit first.")
    approved: int = Field(description="Pitches the chairman took.")
    reviews: int = Field(description="Sittings whose pitches it ranked (3 pitches or more).")
    mean_rank_corr: Figure = Field(
        description="Mean Spearman correlation of its review scores with excess returns."
    )
    may_know: int = Field(
        description="Scored items from sittings before the model's training cutoff: the model "
        "may have known what followed."
    )


class TrackRecordOut(BaseModel):
    """Rolling skill of every member (or model) with a scored sitting at or before `until`."""

    window: int = Field(description="Sittings per member, its newest scored ones.")
    by: By
    until: datetime | None = Field(description="Only sittings as of this instant or before.")
    members: list[SkillOut] = Field(description="Sorted by member (by model: by model).")


class CouncilBacktestOut(BaseModel):
    """A council backtest: what was asked, how far it got, what it spent and, once
    completed, each book's metrics."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: int | None = Field(description="The job that ran it; null for a CLI run.")
    flow_run_id: str | None
    status: RunStatus
    start: datetime = Field(description="The first day's decision instant (its close).")
    end: datetime = Field(description="The last day's decision instant.")
    universe: list[str]
    params: dict[str, Any] = Field(description="Rebalance, models, account, sizing limits...")
    sittings: int = Field(description="Rebalance days in the range.")
    sittings_done: int = Field(description="Sittings recorded so far, however they ended.")
    budget_usd: Decimal | None
    cost_usd: Decimal = Field(description="Spent on models over every sitting so far.")
    requests: int = Field(description="Calls that reached a model (cache hits send none).")
    cache_hits: int = Field(description="Calls the LLM response cache answered, at $0.")
    metrics: dict[str, dict[str, MetricValue]] | None = Field(
        description="By book (council, buy_and_hold, momentum; council_anon when anonymised "
        "sittings sat beside): its metrics, once completed."
    )
    error: str | None = Field(description="Why a failed or canceled backtest ended, in words.")
    created_at: datetime
    finished_at: datetime | None


class SittingOut(BaseModel):
    """One rebalance day and the council run that sat it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    as_of: datetime
    council_run_id: int | None = Field(description="Null if the sitting failed before its run.")
    status: RunStatus
    decisions: int
    cost_usd: Decimal
    requests: int
    cache_hits: int
    cutoff_flags: list[dict[str, Any]] = Field(
        description="Members seated on a model whose training cutoff is after this as_of."
    )
    detail: str | None = Field(description="Why a sitting did not complete.")


class EquityPointOut(BaseModel):
    """Each book's equity at one bar's close."""

    ts: datetime
    council: Figure
    buy_and_hold: Figure
    momentum: Figure
    council_anon: Figure = Field(None, description="The anonymised council, if it sat too.")


class CouncilBacktestDetailOut(BaseModel):
    """A council backtest with everything it stored but its trades
    (`/api/council/backtests/{id}/trades`)."""

    backtest: CouncilBacktestOut
    report: dict[str, Any] | None = Field(
        description="The bias report and the cutoff split (books and pitches before and "
        "after the members' training cutoffs), once completed."
    )
    equity: list[EquityPointOut] = Field(description="Oldest first; empty until completed.")
    sitting_list: list[SittingOut] = Field(description="Every sitting recorded, oldest first.")

    @classmethod
    def of(
        cls, row: CouncilBacktest, sittings: list[CouncilBacktestSitting]
    ) -> CouncilBacktestDetailOut:
        return cls(
            backtest=CouncilBacktestOut.model_validate(row),
            report=row.report,
            equity=[_point(p) for p in row.equity or []],
            sitting_list=[SittingOut.model_validate(s) for s in sittings],
        )


class BookTradeOut(BaseModel):
    """A lot of one book as the backtest executed it, or why it did not (`refused`)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    decision_id: int | None = Field(description="The council decision (council book only).")
    decided_at: datetime
    symbol: str
    side: Side
    weight: Decimal
    qty: Decimal
    entry_ts: datetime | None
    entry_price: Decimal | None
    exit_ts: datetime | None
    exit_price: Decimal | None
    pnl: Decimal | None = Field(description="After fees; an open lot's marked at the last close.")
    return_pct: Figure
    exit_reason: str | None = Field(description="take_profit, stop_loss, horizon, open...")
    refused: str | None = Field(description="Why the order was not placed (a risk check).")


class BookTradesOut(BaseModel):
    backtest_id: int
    book: Book
    trades: list[BookTradeOut] = Field(description="In decision order.")


def _point(stored: list[Any]) -> EquityPointOut:
    ts, council, buy_and_hold, momentum, *anonymised = stored
    instant = datetime.fromisoformat(ts)  # the bars' instants, UTC; stored naive or aware
    return EquityPointOut(
        ts=instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC),
        council=council,
        buy_and_hold=buy_and_hold,
        momentum=momentum,
        council_anon=anonymised[0] if anonymised else None,
    )
