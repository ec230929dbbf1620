"""Scoring a backtest's sittings: every kept pitch against its outcome, every reviewer's
scores against those outcomes, rows ready for `pitch_outcomes` and `reviewer_scores`.

Point in time: the panel given holds the bars known when the scoring runs; a
pitch whose horizon goes past them is left unscored (it is not known yet).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from models.council import PeerReview, Pitch
from tasks.backtest.panel import PricePanel
from tasks.council_backtest.outcomes import Outcome, reviewer_rank_corr, score_pitch


@dataclass(frozen=True)
class Seat:
    """Who sat a seat in a sitting: the model behind a member's pitches and reviews, and
    whether that model may know what followed the sitting."""

    model: str
    review_model: str
    may_know: bool


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
