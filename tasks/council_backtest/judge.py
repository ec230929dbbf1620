"""Scoring sittings: every kept pitch against its outcome, every reviewer's scores against
those outcomes, rows ready for `pitch_outcomes` and `reviewer_scores`.

Point in time: the panel given holds the bars known when the scoring runs; a
pitch whose horizon goes past them is left unscored (it is not known yet).
`outcomes_due` is what every council sitting scores first: the pitches of earlier
sittings that the bars now known resolve are scored, so the track record (and
the reviewers' weights, tasks/council/skill.py) stand as they did that day,
in a backtest as in the live week.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db.queries import track_record as tr
from db.queries.bars import bars_frame
from models.council import CouncilRun, PeerReview, Pitch
from tasks.backtest.panel import PricePanel
from tasks.council_backtest.outcomes import Outcome, reviewer_rank_corr, score_pitch

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Seat:
    """Who sat a seat in a sitting: the model behind a member's pitches and reviews, and
    whether that model may know what followed the sitting."""

    model: str
    review_model: str
    may_know: bool


MAX_PITCH_AGE = timedelta(days=140)
"""Older unscored pitches are not looked at again: a horizon is at most 90 trading days, so
a pitch still unresolved after 140 calendar days never will be (its symbol stopped)."""


def seats_of(
    runs: Mapping[int, CouncilRun | None],
) -> tuple[dict[tuple[int, str], Seat], set[int]]:
    """Each run's seats (from its stored roster) and the runs with a flagged member."""
    seats: dict[tuple[int, str], Seat] = {}
    flagged: set[int] = set()
    for run_id, run in runs.items():
        params = (run.params if run else None) or {}
        may_know = {f["member"] for f in params.get("may_know", [])}
        if may_know:
            flagged.add(run_id)
        for m in params.get("roster", []):
            seats[(run_id, m["name"])] = Seat(
                model=m["model"],
                review_model=m.get("review_model") or m["model"],
                may_know=m["name"] in may_know,
            )
    return seats, flagged


def outcomes_due(session: Session, as_of: datetime) -> list[dict[str, Any]]:
    """Outcome rows of the pitches of completed sittings before `as_of` that the bars known
    at `as_of` now resolve (for `save_outcomes`; reading only). A pitch is measured against
    the universe of the runs scored with it (in a backtest, its own)."""
    due = tr.unscored_pitches(session, as_of, as_of - MAX_PITCH_AGE)
    if not due:
        return []
    runs = {run.id: run for _, run in due}
    symbols = {p.symbol for p, _ in due}
    for run in runs.values():
        symbols |= set((run.params or {}).get("universe", []))
    first = min(run.as_of for run in runs.values()).date() - timedelta(days=7)
    frame = bars_frame(session, sorted(symbols), first, (as_of - DAY).date())
    if frame.empty:
        return []
    panel = PricePanel.from_frame(frame, sorted(set(frame["symbol"])))
    bar_of = {ts.to_pydatetime() + DAY: i for i, ts in enumerate(panel.dates)}
    seats, _ = seats_of(runs)
    approved = tr.decided_pitches(session, runs)
    pitches = [(p, run.as_of) for p, run in due]
    outcomes, _ = score_sittings(panel, bar_of, pitches, [], seats, approved)
    return outcomes


def score_sittings(
    panel: PricePanel,
    bar_of: Mapping[datetime, int],
    pitches: Sequence[tuple[Pitch, datetime]],
    reviews: Sequence[PeerReview],
    seats: Mapping[tuple[int, str], Seat],
    approved: set[int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(pitch outcome rows, reviewer score rows). `bar_of` maps a sitting's as_of to its bar;
    `seats` is keyed by (council run id, member name); `approved` holds pitch ids the
    chairman took."""
    outcomes: list[dict[str, Any]] = []
    excess: dict[int, float] = {}
    when: dict[int, datetime] = {}
    for pitch, as_of in pitches:
        if pitch.symbol not in panel.symbols or as_of not in bar_of:
            continue
        scored = score_pitch(
            panel,
            pitch.symbol,
            bar_of[as_of],
            pitch.side,
            pitch.take_profit,
            pitch.stop_loss,
            pitch.horizon_days or 1,
        )
        if scored is None:
            continue
        seat = seats.get((pitch.run_id, pitch.pm))
        excess[pitch.id] = scored.excess
        when[pitch.id] = as_of
        outcomes.append(_outcome_row(panel, pitch, as_of, scored, seat, pitch.id in approved))
    ballots: dict[tuple[int, str], dict[int, float]] = defaultdict(dict)
    for review in reviews:
        ballots[(review.run_id, review.reviewer)][review.pitch_id] = float(review.score)
    scores = []
    for (run_id, reviewer), given in sorted(ballots.items()):
        judged = [p for p in given if p in excess]
        if not judged:
            continue
        seat = seats.get((run_id, reviewer))
        scores.append(
            {
                "run_id": run_id,
                "reviewer": reviewer,
                "model": seat.review_model if seat else "unknown",
                "as_of": when[judged[0]],
                "pitches": len(judged),
                "rank_corr": reviewer_rank_corr(given, excess),
                "may_know": seat.may_know if seat else False,
            }
        )
    return outcomes, scores


def _outcome_row(
    panel: PricePanel,
    pitch: Pitch,
    as_of: datetime,
    scored: Outcome,
    seat: Seat | None,
    approved: bool,
) -> dict[str, Any]:
    exit_at = panel.dates[scored.exit_bar].to_pydatetime()
    return {
        "pitch_id": pitch.id,
        "run_id": pitch.run_id,
        "member": pitch.pm,
        "model": seat.model if seat else "unknown",
        "symbol": pitch.symbol,
        "side": pitch.side,
        "as_of": as_of,
        "outcome": scored.outcome,
        "entry_price": Decimal(str(round(scored.entry_price, 8))),
        "exit_price": Decimal(str(round(scored.exit_price, 8))),
        "exit_at": exit_at,
        "days": scored.days,
        "ret": scored.ret,
        "universe_ret": scored.universe_ret,
        "excess": scored.excess,
        "approved": approved,
        "may_know": seat.may_know if seat else False,
    }
