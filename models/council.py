"""The weekly council's records: run -> research -> pitch -> review -> decision.

Every row links to its run and to the `llm_calls` row that produced it, so a
decision can be traced back to the prompts, models and data behind it. A
person's verdict on a note (`research_verdicts`) links to the note it judges.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MONEY, PRICE, RATIO, Base, BigId, CreatedMixin, IdMixin
from models.enums import DecisionAction, DecisionStatus, ReportVerdict, RunStatus, Side


class CouncilRun(IdMixin, CreatedMixin, Base):
    """One council sitting for one point in time, with its LLM budget and spend."""

    __tablename__ = "council_runs"

    as_of: Mapped[datetime]
    status: Mapped[RunStatus] = mapped_column(default=RunStatus.PENDING)
    job_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("jobs.id"))
    budget_usd: Mapped[Decimal | None] = mapped_column(MONEY)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # migration 0004: what the run saw and how it ended
    data_hash: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any] | None]  # universe, roster, approval, rules
    detail: Mapped[str | None] = mapped_column(Text)  # why it stopped, in words
    flow_run_id: Mapped[str | None] = mapped_column(String(64))


class ResearchReport(IdMixin, CreatedMixin, Base):
    """What an analyst found about one symbol as of the run's date."""

    __tablename__ = "research_reports"

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("council_runs.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    as_of: Mapped[datetime]
    analyst: Mapped[str] = mapped_column(String(100))
    summary: Mapped[str] = mapped_column(Text)
    findings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    llm_call_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("llm_calls.id"))


class ResearchVerdict(IdMixin, CreatedMixin, Base):
    """A person's verdict on a research note: who, when (`created_at`), and why.

    Kept apart from the note, which is the model's record and never edited: a note
    can be judged by several people, and a later verdict does not erase an earlier one.
    `token_id` has no foreign key, like the audit log's: the record outlives the token.
    """

    __tablename__ = "research_verdicts"

    report_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("research_reports.id", ondelete="CASCADE"), index=True
    )
    verdict: Mapped[ReportVerdict]
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))  # the token's user
    token_id: Mapped[int | None] = mapped_column(BigId)


class Pitch(IdMixin, CreatedMixin, Base):
    """A portfolio manager's trade idea. Prices are proposals; deterministic code sizes orders."""

    __tablename__ = "pitches"

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("council_runs.id", ondelete="CASCADE"))
    pm: Mapped[str] = mapped_column(String(100))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    side: Mapped[Side]
    conviction: Mapped[Decimal] = mapped_column(RATIO)
    thesis: Mapped[str] = mapped_column(Text)
    entry_price: Mapped[Decimal | None] = mapped_column(PRICE)
    take_profit: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_loss: Mapped[Decimal | None] = mapped_column(PRICE)
    horizon_days: Mapped[int | None]
    research_report_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("research_reports.id"))
    llm_call_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("llm_calls.id"))
    dropped_reason: Mapped[str | None] = mapped_column(Text)  # set: failed validation, not reviewed


class PeerReview(IdMixin, CreatedMixin, Base):
    """An anonymous review of a pitch; a reviewer reviews a pitch once."""

    __tablename__ = "peer_reviews"
    __table_args__ = (UniqueConstraint("pitch_id", "reviewer"),)

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("council_runs.id", ondelete="CASCADE"))
    pitch_id: Mapped[int] = mapped_column(BigId, ForeignKey("pitches.id", ondelete="CASCADE"))
    reviewer: Mapped[str] = mapped_column(String(100))
    score: Mapped[Decimal] = mapped_column(RATIO)
    critique: Mapped[str] = mapped_column(Text)
    llm_call_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("llm_calls.id"))
    label: Mapped[str | None] = mapped_column(String(2))  # what this reviewer saw the pitch as
    position: Mapped[int | None]  # where it was shown, 0 first (position bias)


class CouncilDecision(IdMixin, CreatedMixin, Base):
    """The chairman's decision on a symbol, and the human approval it waits for."""

    __tablename__ = "council_decisions"
    __table_args__ = (UniqueConstraint("run_id", "symbol"),)

    run_id: Mapped[int] = mapped_column(BigId, ForeignKey("council_runs.id", ondelete="CASCADE"))
    pitch_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("pitches.id"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    action: Mapped[DecisionAction]
    target_weight: Mapped[Decimal] = mapped_column(RATIO, default=Decimal(0))
    conviction: Mapped[Decimal] = mapped_column(RATIO)
    rationale: Mapped[str] = mapped_column(Text)
    status: Mapped[DecisionStatus] = mapped_column(default=DecisionStatus.PROPOSED)
    approved_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    llm_call_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("llm_calls.id"))
    votes: Mapped[dict[str, Any] | None]  # the pitch's Borda score, mean score and reviews
    note: Mapped[str | None] = mapped_column(Text)  # the approver's note
