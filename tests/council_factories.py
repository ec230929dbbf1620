"""Council rows with defaults, so an API test states only what it is about.

Each builder adds one ORM row to the session and flushes it (ids are known at
once); the caller's unit of work commits. Defaults are a plausible week: a
completed run as of 2019-06-03's close on the sample universe, an analyst's
note that quotes figures, a buy pitch with a coherent bracket.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from models.council import CouncilDecision, CouncilRun, PeerReview, Pitch, ResearchReport
from models.enums import DecisionAction, LLMCallStatus, RunStatus, Side
from models.ops import LLMCall

T = TypeVar("T")

AS_OF = datetime(2019, 6, 4, tzinfo=UTC)  # the instant 2019-06-03 ended


def make_run(
    session: Session,
    *,
    as_of: datetime = AS_OF,
    status: RunStatus = RunStatus.COMPLETED,
    universe: Sequence[str] = ("AAPL", "MSFT"),
    cost_usd: Decimal = Decimal("0.0123"),
    data_hash: str | None = None,
) -> CouncilRun:
    run = CouncilRun(
        as_of=as_of,
        status=status,
        cost_usd=cost_usd,
        data_hash=data_hash,
        params={"universe": list(universe)},
    )
    return _added(session, run)


def make_call(
    session: Session,
    run: CouncilRun,
    *,
    stage: str = "research",
    member: str = "analyst-value",
    model: str = "openai/gpt-4o-mini",
    prompt_tokens: int = 1800,
    completion_tokens: int = 400,
    cost_usd: Decimal = Decimal("0.0005"),
) -> LLMCall:
    call = LLMCall(
        run_id=run.id,
        stage=stage,
        member=member,
        model=model,
        provider=model.split("/")[0],
        prompt_hash="ab" * 32,
        status=LLMCallStatus.OK,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost_usd,
        latency_ms=850,
    )
    return _added(session, call)


def make_report(
    session: Session,
    run: CouncilRun,
    *,
    symbol: str = "AAPL",
    analyst: str = "analyst-value",
    evidence: Sequence[str] = ("close 173.30",),
    call: LLMCall | None = None,
) -> ResearchReport:
    note: dict[str, Any] = {
        "symbol": symbol,
        "stance": "bullish",
        "confidence": "0.6",
        "summary": f"{symbol} looks oversold.",
        "evidence": list(evidence),
        "risks": ["earnings in 8 weeks"],
    }
    report = ResearchReport(
        run_id=run.id,
        symbol=symbol,
        as_of=run.as_of,
        analyst=analyst,
        summary=note["summary"],
        findings=note,
        llm_call_id=call.id if call is not None else None,
    )
    return _added(session, report)


def make_pitch(
    session: Session,
    run: CouncilRun,
    *,
    symbol: str = "AAPL",
    pm: str = "pm-momentum",
    side: Side = Side.BUY,
    conviction: Decimal = Decimal("0.6"),
    entry_price: Decimal | None = Decimal("173.30"),
    take_profit: Decimal | None = Decimal("190"),
    stop_loss: Decimal | None = Decimal("165"),
    dropped_reason: str | None = None,
) -> Pitch:
    pitch = Pitch(
        run_id=run.id,
        pm=pm,
        symbol=symbol,
        side=side,
        conviction=conviction,
        thesis=f"{symbol}: 20d return -12%, far below its SMA50.",
        entry_price=entry_price,
        take_profit=take_profit,
        stop_loss=stop_loss,
        horizon_days=10,
        dropped_reason=dropped_reason,
    )
    return _added(session, pitch)


def make_review(
    session: Session,
    pitch: Pitch,
    *,
    reviewer: str = "pm-value",
    score: Decimal = Decimal("0.5"),
    label: str = "A",
    position: int = 0,
) -> PeerReview:
    review = PeerReview(
        run_id=pitch.run_id,
        pitch_id=pitch.id,
        reviewer=reviewer,
        score=score,
        critique="The data supports it, the stop is tight.",
        label=label,
        position=position,
    )
    return _added(session, review)


def make_decision(
    session: Session,
    pitch: Pitch,
    *,
    action: DecisionAction = DecisionAction.BUY,
    target_weight: Decimal = Decimal("0.1"),
    votes: dict[str, Any] | None = None,
) -> CouncilDecision:
    decision = CouncilDecision(
        run_id=pitch.run_id,
        pitch_id=pitch.id,
        symbol=pitch.symbol,
        action=action,
        target_weight=target_weight,
        conviction=pitch.conviction,
        rationale="Best ranked pitch.",
        votes=votes,
    )
    return _added(session, decision)


def _added(session: Session, row: T) -> T:
    session.add(row)
    session.flush()
    return row
