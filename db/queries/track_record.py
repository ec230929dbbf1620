"""Council backtests and the council's track record: the rows flows write and routers read.

Nothing here commits: callers own their units of work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.council import CouncilDecision, CouncilRun, PeerReview, Pitch
from models.enums import DecisionAction, RunStatus
from models.errors import NotFoundError
from models.ops import AuditEvent, LLMCall
from models.track_record import (
    CouncilBacktest,
    CouncilBacktestSitting,
    CouncilBacktestTrade,
    PitchOutcome,
    ReviewerScore,
)


def create_council_backtest(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    universe: Sequence[str],
    params: dict[str, Any],
    sittings: int,
    budget_usd: Decimal | None,
    job_id: int | None,
    flow_run_id: str | None,
) -> CouncilBacktest:
    row = CouncilBacktest(
        start=start,
        end=end,
        universe=list(universe),
        params=params,
        sittings=sittings,
        budget_usd=budget_usd,
        job_id=job_id,
        flow_run_id=flow_run_id,
        status=RunStatus.RUNNING,
    )
    session.add(row)
    session.flush()
    return row


def get_council_backtest(session: Session, backtest_id: int) -> CouncilBacktest:
    row = session.get(CouncilBacktest, backtest_id)
    if row is None:
        raise NotFoundError(f"council backtest {backtest_id} does not exist")
    return row


def record_sitting(
    session: Session,
    backtest_id: int,
    as_of: datetime,
    status: RunStatus,
    *,
    anonymised: bool = False,
    decisions: int = 0,
    detail: str | None = None,
) -> CouncilBacktestSitting:
    """A sitting's row: its council run (the newest this backtest opened as of `as_of` in
    that mode; none when the sitting was refused before it opened one), what the run
    spent, how much the cache answered and the members it flagged; the backtest's totals
    follow."""
    runs = session.scalars(
        select(CouncilRun)
        .where(
            CouncilRun.as_of == as_of,
            CouncilRun.params["sitting_of"].as_integer() == backtest_id,
        )
        .order_by(CouncilRun.id.desc())
    )
    run = next((r for r in runs if bool((r.params or {}).get("anonymised")) == anonymised), None)
    cost, requests, hits = run_spend(session, run.id) if run else (Decimal(0), 0, 0)
    row = CouncilBacktestSitting(
        backtest_id=backtest_id,
        as_of=as_of,
        anonymised=anonymised,
        council_run_id=run.id if run else None,
        status=status,
        decisions=decisions,
        cost_usd=cost,
        requests=requests,
        cache_hits=hits,
        cutoff_flags=list((run.params or {}).get("may_know", [])) if run else [],
        detail=detail,
    )
    session.add(row)
    backtest = get_council_backtest(session, backtest_id)
    backtest.sittings_done += 1
    backtest.cost_usd += cost
    backtest.requests += requests
    backtest.cache_hits += hits
    session.flush()
    return row


def run_spend(session: Session, run_id: int) -> tuple[Decimal, int, int]:
    """(dollars spent, requests sent to a model, calls the cache answered) of a council run.
    A request is an attempt that left this process: a cache hit or a refused call sent none."""
    cost, requests, hits = session.execute(
        select(
            func.coalesce(func.sum(LLMCall.cost_usd), 0),
            func.coalesce(func.sum(LLMCall.attempts).filter(LLMCall.cache_hit.is_(False)), 0),
            func.count().filter(LLMCall.cache_hit.is_(True)),
        ).where(LLMCall.run_id == run_id)
    ).one()
    return Decimal(cost), int(requests), int(hits)


def council_backtests(
    session: Session,
    *,
    job_id: int | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[CouncilBacktest]:
    """Newest first by creation (`since` inclusive, `until` exclusive), every filter given."""
    stmt = select(CouncilBacktest)
    if job_id is not None:
        stmt = stmt.where(CouncilBacktest.job_id == job_id)
    if status is not None:
        stmt = stmt.where(CouncilBacktest.status == status)
    if since is not None:
        stmt = stmt.where(CouncilBacktest.created_at >= since)
    if until is not None:
        stmt = stmt.where(CouncilBacktest.created_at < until)
    stmt = stmt.order_by(CouncilBacktest.created_at.desc(), CouncilBacktest.id.desc())
    return list(session.scalars(stmt.offset(offset).limit(limit)))


def sittings_of(session: Session, backtest_id: int) -> list[CouncilBacktestSitting]:
    return list(
        session.scalars(
            select(CouncilBacktestSitting)
            .where(CouncilBacktestSitting.backtest_id == backtest_id)
            .order_by(CouncilBacktestSitting.as_of)
        )
    )


@dataclass(frozen=True)
class SittingDecision:
    """A chairman's decision of a sitting, with the pitch it took its prices from."""

    decision: CouncilDecision
    pitch: Pitch | None
    as_of: datetime


def decisions_of(session: Session, run_ids: Iterable[int]) -> list[SittingDecision]:
    """The buy and sell decisions of these council runs, oldest sitting first."""
    ids = list(run_ids)
    rows = session.execute(
        select(CouncilDecision, Pitch, CouncilRun.as_of)
        .join(CouncilRun, CouncilRun.id == CouncilDecision.run_id)
        .outerjoin(Pitch, Pitch.id == CouncilDecision.pitch_id)
        .where(
            CouncilDecision.run_id.in_(ids),
            CouncilDecision.action != DecisionAction.HOLD,
        )
        .order_by(CouncilRun.as_of, CouncilDecision.id)
    ).all()
    return [SittingDecision(d, p, as_of) for d, p, as_of in rows]


def pitches_of(session: Session, run_ids: Iterable[int]) -> list[tuple[Pitch, datetime]]:
    """Every kept pitch (not dropped by validation) of these runs, with its sitting's as_of."""
    rows = session.execute(
        select(Pitch, CouncilRun.as_of)
        .join(CouncilRun, CouncilRun.id == Pitch.run_id)
        .where(Pitch.run_id.in_(list(run_ids)), Pitch.dropped_reason.is_(None))
        .order_by(CouncilRun.as_of, Pitch.id)
    ).all()
    return [(p, as_of) for p, as_of in rows]


def reviews_of(session: Session, run_ids: Iterable[int]) -> list[PeerReview]:
    return list(
        session.scalars(
            select(PeerReview)
            .where(PeerReview.run_id.in_(list(run_ids)))
            .order_by(PeerReview.run_id, PeerReview.reviewer, PeerReview.pitch_id)
        )
    )


def add_book_trades(session: Session, backtest_id: int, rows: Iterable[dict[str, Any]]) -> None:
    session.add_all(CouncilBacktestTrade(backtest_id=backtest_id, **r) for r in rows)
    session.flush()


def book_trades(session: Session, backtest_id: int, book: str) -> list[CouncilBacktestTrade]:
    return list(
        session.scalars(
            select(CouncilBacktestTrade)
            .where(
                CouncilBacktestTrade.backtest_id == backtest_id, CouncilBacktestTrade.book == book
            )
            .order_by(CouncilBacktestTrade.decided_at, CouncilBacktestTrade.id)
        )
    )


def save_outcomes(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store pitch outcomes; a pitch scored before is scored again (its bars may have grown)."""
    ids = [r["pitch_id"] for r in rows]
    if ids:
        session.execute(delete(PitchOutcome).where(PitchOutcome.pitch_id.in_(ids)))
    session.add_all(PitchOutcome(**r) for r in rows)
    session.flush()


def save_reviewer_scores(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    keys = {(r["run_id"], r["reviewer"]) for r in rows}
    for run_id, reviewer in keys:
        session.execute(
            delete(ReviewerScore).where(
                ReviewerScore.run_id == run_id, ReviewerScore.reviewer == reviewer
            )
        )
    session.add_all(ReviewerScore(**r) for r in rows)
    session.flush()


def finish_council_backtest(
    session: Session,
    backtest_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    metrics: dict[str, Any] | None = None,
    equity: list[Any] | None = None,
    report: dict[str, Any] | None = None,
) -> CouncilBacktest:
    row = get_council_backtest(session, backtest_id)
    row.status = status
    row.error = error
    if metrics is not None:
        row.metrics = metrics
    if equity is not None:
        row.equity = equity
    if report is not None:
        row.report = report
    row.finished_at = utcnow()
    session.flush()
    return row


# --- the track record, as GET /api/council/members serves it ------------------------


@dataclass
class Skill:
    """One member's (or model's) record over its last `window` scored sittings."""

    member: str
    model: str
    pitches: int = 0
    hits: int = 0  # beat the universe
    take_profits: int = 0
    stop_losses: int = 0
    excess_sum: float = 0.0
    approved: int = 0
    reviews: int = 0
    rank_corr_sum: float = 0.0
    may_know: int = 0  # scored items from sittings before the model's cutoff

    def out(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "model": self.model,
            "pitches": self.pitches,
            "hit_rate": self.hits / self.pitches if self.pitches else None,
            "mean_excess": self.excess_sum / self.pitches if self.pitches else None,
            "take_profit_rate": self.take_profits / self.pitches if self.pitches else None,
            "stop_loss_rate": self.stop_losses / self.pitches if self.pitches else None,
            "approved": self.approved,
            "reviews": self.reviews,
            "mean_rank_corr": self.rank_corr_sum / self.reviews if self.reviews else None,
            "may_know": self.may_know,
        }


def track_record(
    session: Session, *, window: int, until: datetime | None = None, by: str = "member"
) -> list[dict[str, Any]]:
    """Rolling skill: each member's (or model's, `by="model"`) pitches and reviews over its
    last `window` sittings at or before `until`, from the stored outcomes."""
    stmt = select(PitchOutcome)
    rstmt = select(ReviewerScore).where(ReviewerScore.rank_corr.is_not(None))
    if until is not None:
        stmt = stmt.where(PitchOutcome.as_of <= until)
        rstmt = rstmt.where(ReviewerScore.as_of <= until)
    outcomes = list(session.scalars(stmt))
    reviews = list(session.scalars(rstmt))

    def key(member: str, model: str) -> tuple[str, str]:
        return (model, model) if by == "model" else (member, model)

    days: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for o in outcomes:
        days[key(o.member, o.model)].add(o.as_of)
    for r in reviews:
        days[key(r.reviewer, r.model)].add(r.as_of)
    since = {k: sorted(v)[-window:][0] for k, v in days.items()}  # the window's first sitting
    skills: dict[tuple[str, str], Skill] = {}
    for o in outcomes:
        k = key(o.member, o.model)
        if o.as_of < since[k]:
            continue
        s = skills.setdefault(k, Skill(*k))
        s.pitches += 1
        s.hits += o.excess > 0
        s.take_profits += o.outcome == "take_profit"
        s.stop_losses += o.outcome == "stop_loss"
        s.excess_sum += o.excess
        s.approved += o.approved
        s.may_know += o.may_know
    for r in reviews:
        k = key(r.reviewer, r.model)
        if r.as_of < since[k] or r.rank_corr is None:
            continue
        s = skills.setdefault(k, Skill(*k))
        s.reviews += 1
        s.rank_corr_sum += r.rank_corr
        s.may_know += r.may_know
    return [skills[k].out() for k in sorted(skills)]


# --- what is due for scoring, and what reviewers have shown so far ------------------


def unscored_pitches(
    session: Session, before: datetime, since: datetime
) -> list[tuple[Pitch, CouncilRun]]:
    """Kept pitches of completed council runs sat in [since, before) that have no outcome
    yet, with their runs: what a sitting at `before` may score from the bars it knows."""
    rows = session.execute(
        select(Pitch, CouncilRun)
        .join(CouncilRun, CouncilRun.id == Pitch.run_id)
        .outerjoin(PitchOutcome, PitchOutcome.pitch_id == Pitch.id)
        .where(
            CouncilRun.as_of < before,
            CouncilRun.as_of >= since,
            CouncilRun.status == RunStatus.COMPLETED,
            Pitch.dropped_reason.is_(None),
            PitchOutcome.id.is_(None),
        )
        .order_by(CouncilRun.as_of, Pitch.id)
    ).all()
    return [(p, r) for p, r in rows]


def decided_pitches(session: Session, run_ids: Iterable[int]) -> set[int]:
    """The pitches these runs' chairmen took."""
    ids = session.scalars(
        select(CouncilDecision.pitch_id).where(
            CouncilDecision.run_id.in_(list(run_ids)), CouncilDecision.pitch_id.is_not(None)
        )
    )
    return {i for i in ids if i is not None}


@dataclass(frozen=True)
class ReviewSeen:
    """One review whose pitch's outcome was known by a given instant."""

    reviewer: str
    sitting: tuple[datetime, bool]  # the reviewing run's as_of, and whether anonymised
    run_id: int
    pitch_id: int
    score: float
    excess: float


def reviews_with_outcomes(session: Session, known_by: datetime) -> list[ReviewSeen]:
    """Every review of a pitch whose outcome was known by `known_by` (its exit bar complete),
    sat before it. Point in time: a weight computed at `known_by` reads only these."""
    rows = session.execute(
        select(
            PeerReview.reviewer,
            CouncilRun.as_of,
            CouncilRun.params,
            PeerReview.run_id,
            PeerReview.pitch_id,
            PeerReview.score,
            PitchOutcome.excess,
        )
        .join(PitchOutcome, PitchOutcome.pitch_id == PeerReview.pitch_id)
        .join(CouncilRun, CouncilRun.id == PeerReview.run_id)
        .where(
            CouncilRun.as_of < known_by,
            PitchOutcome.exit_at <= known_by - timedelta(days=1),  # a bar is known at its end
        )
        .order_by(CouncilRun.as_of, PeerReview.run_id, PeerReview.pitch_id)
    ).all()
    return [
        ReviewSeen(
            reviewer,
            (as_of, bool((params or {}).get("anonymised"))),
            run_id,
            pitch_id,
            float(score),
            excess,
        )
        for reviewer, as_of, params, run_id, pitch_id, score, excess in rows
    ]


def tallies_of(session: Session, run_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Each run's review tallies (plain and skill-weighted, the `review.tallies` record)."""
    rows = session.execute(
        select(AuditEvent.entity_id, AuditEvent.payload).where(
            AuditEvent.event == "review.tallies",
            AuditEvent.entity_type == "council_run",
            AuditEvent.entity_id.in_([str(r) for r in run_ids]),
        )
    ).all()
    return {int(entity): payload for entity, payload in rows}
