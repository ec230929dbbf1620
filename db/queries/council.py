"""Council rows: a run, its research, pitches, reviews and decisions, and the audit chain.

The flow writes each stage's outcome here as the stage ends (the realtime
process and the API read these tables, never Prefect's result storage), and
a re-run of the same flow run finds them again instead of recomputing.
`audit_chain` is the one query behind "why was this decided".
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.council import CouncilDecision, CouncilRun, PeerReview, Pitch, ResearchReport
from models.enums import DecisionAction, DecisionStatus, RunStatus
from models.errors import NotFoundError
from models.ops import LLMCall
from models.trading import Account, Fill, Order, TradeIntent


def run_of_flow(session: Session, flow_run_id: object) -> CouncilRun:
    """The council run a Prefect flow run sat (its id as a UUID or a string)."""
    run = session.scalar(select(CouncilRun).where(CouncilRun.flow_run_id == str(flow_run_id)))
    if run is None:
        raise NotFoundError(f"flow run {flow_run_id} has no council run")
    return run


def latest_run(session: Session) -> CouncilRun:
    """The newest council run, whatever its status."""
    run = session.scalar(select(CouncilRun).order_by(CouncilRun.id.desc()).limit(1))
    if run is None:
        raise NotFoundError('no council has sat yet: POST /api/jobs {"type": "council"}')
    return run


def runs(
    session: Session,
    *,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CouncilRun]:
    """Council runs newest first by creation (`since` inclusive, `until` exclusive)."""
    stmt = select(CouncilRun)
    if status is not None:
        stmt = stmt.where(CouncilRun.status == status)
    if since is not None:
        stmt = stmt.where(CouncilRun.created_at >= since)
    if until is not None:
        stmt = stmt.where(CouncilRun.created_at < until)
    stmt = stmt.order_by(CouncilRun.created_at.desc(), CouncilRun.id.desc())
    return list(session.scalars(stmt.offset(offset).limit(limit)))


def latest_run_with_pitches(session: Session) -> CouncilRun:
    """The newest council run that wrote pitches, whatever its status."""
    run = session.scalar(
        select(CouncilRun)
        .where(select(Pitch.id).where(Pitch.run_id == CouncilRun.id).exists())
        .order_by(CouncilRun.id.desc())
        .limit(1)
    )
    if run is None:
        raise NotFoundError("no council run has pitches yet: POST /api/pitches/generate")
    return run


def previous_completed_run(session: Session, run: CouncilRun) -> CouncilRun | None:
    """The latest completed run before `run` as of the same instant with the same universe,
    roster and rules: a run of other options is no replay. How it was approved may differ.
    A replay (params `replay`) is never the run another replay compares with."""
    earlier = session.scalars(
        select(CouncilRun)
        .where(CouncilRun.as_of == run.as_of, CouncilRun.status == RunStatus.COMPLETED)
        .where(CouncilRun.id < run.id)
        .order_by(CouncilRun.id.desc())
    )
    originals = (r for r in earlier if not (r.params or {}).get("replay"))
    return next((r for r in originals if _options(r) == _options(run)), None)


def call_counts(session: Session, run_id: int) -> tuple[int, int]:
    """(LLM calls of the run, how many of them the cache answered)."""
    calls, cached = session.execute(
        select(func.count(), func.count().filter(LLMCall.cache_hit.is_(True))).where(
            LLMCall.run_id == run_id
        )
    ).one()
    return int(calls), int(cached)


def _options(run: CouncilRun) -> dict[str, Any]:
    return {k: v for k, v in (run.params or {}).items() if k not in ("approval", "replay")}


def get_run(session: Session, run_id: int) -> CouncilRun:
    run = session.get(CouncilRun, run_id)
    if run is None:
        raise NotFoundError(f"council run {run_id} does not exist")
    return run


def research_rows(session: Session, run_id: int) -> list[ResearchReport]:
    return list(
        session.scalars(
            select(ResearchReport)
            .where(ResearchReport.run_id == run_id)
            .order_by(ResearchReport.id)
        )
    )


def add_research(
    session: Session,
    run_id: int,
    as_of: datetime,
    analyst: str,
    notes: Sequence[dict[str, Any]],
    llm_call_id: int | None,
) -> None:
    """One row per symbol note of an analyst's pack. The symbols must be known instruments:
    a model's text never adds reference data (the stage refuses notes off its universe)."""
    for note in notes:
        session.add(
            ResearchReport(
                run_id=run_id,
                symbol=note["symbol"],
                as_of=as_of,
                analyst=analyst,
                summary=note["summary"],
                findings=note,
                llm_call_id=llm_call_id,
            )
        )
    session.flush()


def pitch_rows(session: Session, run_id: int) -> list[Pitch]:
    return list(session.scalars(select(Pitch).where(Pitch.run_id == run_id).order_by(Pitch.id)))


def add_pitch(
    session: Session,
    run_id: int,
    pm: str,
    pitch: dict[str, Any],
    llm_call_id: int | None,
    dropped_reason: str | None,
) -> Pitch:
    row = Pitch(
        run_id=run_id,
        pm=pm,
        symbol=pitch["symbol"],
        side=pitch["side"],
        conviction=Decimal(str(pitch["conviction"])),
        thesis=pitch["thesis"],
        entry_price=_dec(pitch.get("entry_price")),
        take_profit=_dec(pitch.get("take_profit")),
        stop_loss=_dec(pitch.get("stop_loss")),
        horizon_days=pitch.get("horizon_days"),
        llm_call_id=llm_call_id,
        dropped_reason=dropped_reason,
    )
    session.add(row)
    session.flush()
    return row


def review_rows(session: Session, run_id: int) -> list[PeerReview]:
    return list(
        session.scalars(
            select(PeerReview).where(PeerReview.run_id == run_id).order_by(PeerReview.id)
        )
    )


def add_review(
    session: Session,
    run_id: int,
    pitch_id: int,
    reviewer: str,
    score: Decimal,
    critique: str,
    llm_call_id: int | None,
    label: str,
    position: int,
) -> None:
    session.add(
        PeerReview(
            run_id=run_id,
            pitch_id=pitch_id,
            reviewer=reviewer,
            score=score,
            critique=critique,
            llm_call_id=llm_call_id,
            label=label,
            position=position,
        )
    )


def decision_rows(session: Session, run_id: int) -> list[CouncilDecision]:
    return list(
        session.scalars(
            select(CouncilDecision)
            .where(CouncilDecision.run_id == run_id)
            .order_by(CouncilDecision.id)
        )
    )


def add_decision(
    session: Session,
    run_id: int,
    pitch_id: int,
    symbol: str,
    action: DecisionAction,
    target_weight: Decimal,
    conviction: Decimal,
    rationale: str,
    votes: dict[str, Any],
    llm_call_id: int | None,
) -> CouncilDecision:
    row = CouncilDecision(
        run_id=run_id,
        pitch_id=pitch_id,
        symbol=symbol,
        action=action,
        target_weight=target_weight,
        conviction=conviction,
        rationale=rationale,
        votes=votes,
        llm_call_id=llm_call_id,
    )
    session.add(row)
    session.flush()
    return row


def settle_decisions(
    session: Session,
    run_id: int,
    rejected: dict[int, str | None],
    approver: str,
    note: str | None = None,
) -> list[CouncilDecision]:
    """Approve every proposed decision of the run but those in `rejected` (id -> note)."""
    rows = decision_rows(session, run_id)
    unknown = set(rejected) - {r.id for r in rows}
    if unknown:
        raise NotFoundError(f"run {run_id} has no decisions {sorted(unknown)}")
    now = utcnow()
    for row in rows:
        if row.status is not DecisionStatus.PROPOSED:
            continue
        if row.id in rejected:
            row.status, row.note = DecisionStatus.REJECTED, rejected[row.id] or note
        else:
            row.status, row.note = DecisionStatus.APPROVED, note
        row.approved_by, row.decided_at = approver, now
    return rows


def audit_chain(session: Session, decision_id: int) -> dict[str, Any]:
    """A decision with everything behind it: its pitch and votes, the run's research, the
    LLM calls that produced each, and the hash of the data the run saw."""
    decision = session.get(CouncilDecision, decision_id)
    if decision is None:
        raise NotFoundError(f"council decision {decision_id} does not exist")
    run = get_run(session, decision.run_id)
    pitch = session.get(Pitch, decision.pitch_id) if decision.pitch_id else None
    reviews = (
        list(session.scalars(select(PeerReview).where(PeerReview.pitch_id == pitch.id)))
        if pitch
        else []
    )
    research = research_rows(session, run.id)
    call_ids = {
        i
        for i in (
            decision.llm_call_id,
            pitch.llm_call_id if pitch else None,
            *(r.llm_call_id for r in reviews),
            *(r.llm_call_id for r in research),
        )
        if i is not None
    }
    calls = list(session.scalars(select(LLMCall).where(LLMCall.id.in_(call_ids))))
    return {
        "decision": _row(decision),
        "run": _row(run),
        "data_hash": run.data_hash,
        "pitch": _row(pitch) if pitch else None,
        "votes": [_row(r) for r in reviews],
        "research": [_row(r) for r in research],
        "llm_calls": [_row(c) for c in sorted(calls, key=lambda c: c.id)],
        "execution": _execution(session, decision.id),
    }


def _execution(session: Session, decision_id: int) -> list[dict[str, Any]]:
    """Per account: the intent (size, checks, verdict), its orders and their fills."""
    out = []
    intents = session.scalars(
        select(TradeIntent).where(TradeIntent.decision_id == decision_id).order_by(TradeIntent.id)
    )
    for intent in intents:
        account = session.get(Account, intent.account_id)
        orders = session.scalars(
            select(Order).where(Order.intent_id == intent.id).order_by(Order.id)
        ).all()
        fills = session.scalars(
            select(Fill).where(Fill.order_id.in_([o.id for o in orders])).order_by(Fill.ts)
        ).all()
        out.append(
            {
                "account": account.name if account else intent.account_id,
                "intent": _row(intent),
                "orders": [_row(o) for o in orders],
                "fills": [_row(f) for f in fills],
            }
        )
    return out


def _row(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def decision_as_of(session: Session, decision_ids: Sequence[int]) -> datetime:
    """The instant the decisions' council sat as of; they must all come from one run."""
    rows = session.execute(
        select(CouncilDecision.id, CouncilRun.as_of)
        .join(CouncilRun, CouncilRun.id == CouncilDecision.run_id)
        .where(CouncilDecision.id.in_(list(decision_ids)))
    ).all()
    missing = set(decision_ids) - {r.id for r in rows}
    if missing:
        raise NotFoundError(f"no council decision {', '.join(map(str, sorted(missing)))}")
    instants: set[datetime] = {r.as_of for r in rows}
    if len(instants) != 1:
        raise ValueError("the decisions come from councils that sat as of different instants")
    return instants.pop()
