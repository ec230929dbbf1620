"""What a council run stored about each stage, read for `tasks.council.causes` to explain.

Read-only. The `llm_calls` rows are read without their prompts and outputs
(large): the status and the error text the gateway wrote are what say how a
member answered. Only the chairman's parsed answer is read, to count the
holds it called (a hold is no decision and is stored nowhere else). The
chairman's refused calls are audit events (`chairman.call_rejected`), the
only place their reason is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.council import get_run
from db.queries.trading import failed_checks
from models.council import CouncilDecision, PeerReview, Pitch
from models.enums import DecisionStatus, IntentStatus, LLMCallStatus, RunStatus, Side
from models.ops import AuditEvent, Job, LLMCall
from models.trading import Account, TradeIntent


@dataclass(frozen=True)
class Seat:
    """A member as the run's roster named it (`params["roster"]`)."""

    name: str
    role: str  # analyst | pm | chairman
    model: str


@dataclass(frozen=True)
class CallFact:
    id: int
    stage: str  # research | pitch | review | chairman, as the gateway recorded it
    member: str
    model: str
    status: LLMCallStatus
    error: str | None
    cache_hit: bool


@dataclass(frozen=True)
class PitchFact:
    id: int
    pm: str
    symbol: str
    dropped_reason: str | None


@dataclass(frozen=True)
class DecisionFact:
    id: int
    symbol: str
    status: DecisionStatus
    approved_by: str | None
    note: str | None


@dataclass(frozen=True)
class IntentFact:
    """A decision's intent on one account, with what refused it, if anything did."""

    account: str
    symbol: str
    side: Side
    qty: Decimal
    status: IntentStatus
    checks: tuple[str, ...]
    reason: str | None


@dataclass(frozen=True)
class StoredRun:
    """Everything a run stored that says how far it got and why, one stage after another."""

    run_id: int
    status: RunStatus
    detail: str | None
    job_stage: str | None  # the last stage the run's job announced
    stopped_after: str | None  # a stage the run was asked to stop after
    roster: tuple[Seat, ...]  # empty for runs stored before the roster was
    calls: tuple[CallFact, ...]  # oldest first
    pitches: tuple[PitchFact, ...]
    reviewers: frozenset[str]  # members with at least one review kept
    reviewed: frozenset[int]  # pitch ids with at least one review kept
    chair_holds: int
    chair_refusals: tuple[str, ...]  # "SYMBOL: reason"
    decisions: tuple[DecisionFact, ...]
    intents: tuple[IntentFact, ...]


def stored_run(session: Session, run_id: int) -> StoredRun:
    """The run's stored facts; `NotFoundError` if there is no such run."""
    run = get_run(session, run_id)
    job = session.get(Job, run.job_id) if run.job_id is not None else None
    result = (job.result or {}) if job is not None else {}
    calls = tuple(_calls(session, run_id))
    reviews = session.execute(
        select(PeerReview.reviewer, PeerReview.pitch_id).where(PeerReview.run_id == run_id)
    ).all()
    return StoredRun(
        run_id=run.id,
        status=run.status,
        detail=run.detail,
        job_stage=_text(result.get("stage")),
        stopped_after=_text(result.get("stopped_after")),
        roster=tuple(_seats((run.params or {}).get("roster"))),
        calls=calls,
        pitches=tuple(_pitches(session, run_id)),
        reviewers=frozenset(r.reviewer for r in reviews),
        reviewed=frozenset(r.pitch_id for r in reviews),
        chair_holds=_holds(session, [c.id for c in calls if c.stage == "chairman"]),
        chair_refusals=tuple(_chair_refusals(session, run_id)),
        decisions=tuple(_decisions(session, run_id)),
        intents=tuple(_intents(session, run_id)),
    )


def _calls(session: Session, run_id: int) -> list[CallFact]:
    rows = session.execute(
        select(
            LLMCall.id,
            LLMCall.stage,
            LLMCall.member,
            LLMCall.model,
            LLMCall.status,
            LLMCall.error,
            LLMCall.cache_hit,
        )
        .where(LLMCall.run_id == run_id)
        .order_by(LLMCall.id)
    )
    return [CallFact(*row) for row in rows]


def _pitches(session: Session, run_id: int) -> list[PitchFact]:
    rows = session.execute(
        select(Pitch.id, Pitch.pm, Pitch.symbol, Pitch.dropped_reason)
        .where(Pitch.run_id == run_id)
        .order_by(Pitch.id)
    )
    return [PitchFact(*row) for row in rows]


def _holds(session: Session, chair_call_ids: list[int]) -> int:
    """Holds in the chairman's latest answer (a repair's or a cache hit's included)."""
    if not chair_call_ids:
        return 0
    answer = session.scalar(select(LLMCall.parsed_output).where(LLMCall.id == max(chair_call_ids)))
    calls = (answer or {}).get("calls") or []
    return sum(1 for c in calls if isinstance(c, dict) and c.get("action") == "hold")


def _chair_refusals(session: Session, run_id: int) -> list[str]:
    payloads = session.scalars(
        select(AuditEvent.payload)
        .where(
            AuditEvent.entity_type == "council_run",
            AuditEvent.entity_id == str(run_id),
            AuditEvent.event == "chairman.call_rejected",
        )
        .order_by(AuditEvent.id)
    )
    return [f"{(p.get('call') or {}).get('symbol', '?')}: {p.get('reason')}" for p in payloads]


def _decisions(session: Session, run_id: int) -> list[DecisionFact]:
    rows = session.execute(
        select(
            CouncilDecision.id,
            CouncilDecision.symbol,
            CouncilDecision.status,
            CouncilDecision.approved_by,
            CouncilDecision.note,
        )
        .where(CouncilDecision.run_id == run_id)
        .order_by(CouncilDecision.id)
    )
    return [DecisionFact(*row) for row in rows]


def _intents(session: Session, run_id: int) -> list[IntentFact]:
    rows = session.execute(
        select(TradeIntent, Account.name)
        .join(CouncilDecision, CouncilDecision.id == TradeIntent.decision_id)
        .join(Account, Account.id == TradeIntent.account_id)
        .where(CouncilDecision.run_id == run_id)
        .order_by(TradeIntent.id)
    )
    return [
        IntentFact(
            account=name,
            symbol=i.symbol,
            side=i.side,
            qty=i.qty,
            status=i.status,
            checks=tuple(failed_checks(i)),
            reason=i.reject_reason,
        )
        for i, name in rows
    ]


def _seats(roster: Any) -> list[Seat]:
    if not isinstance(roster, list):
        return []
    return [
        Seat(str(m["name"]), str(m["role"]), str(m.get("model", "")))
        for m in roster
        if isinstance(m, dict) and "name" in m and "role" in m
    ]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
