"""Reviewers weighted by skill: the weights from what their scores foretold, and the
weighted tally beside the plain one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from db.queries.track_record import ReviewSeen
from tasks.council.aggregate import Ballot, borda, rank_pitches
from tasks.council.skill import HIGH, LOW, reviewer_weights

T0 = datetime(2018, 1, 6, tzinfo=UTC)


def _ballot(reviewer: str, scores: dict[int, float]) -> Ballot:
    return Ballot(reviewer, scores, {p: i for i, p in enumerate(scores)})


def _seen(
    reviewer: str, week: int, pairs: list[tuple[float, float]], run: int = 0
) -> list[ReviewSeen]:
    sitting = (T0 + timedelta(weeks=week), False)
    return [
        ReviewSeen(reviewer, sitting, 10 * week + run, 1000 * run + 100 * week + i, score, excess)
        for i, (score, excess) in enumerate(pairs)
    ]


GOOD = [(0.9, 0.05), (0.6, 0.01), (0.2, -0.03), (0.1, -0.04)]  # ranks what followed exactly
BAD = [(0.1, 0.05), (0.3, 0.01), (0.7, -0.03), (0.9, -0.04)]  # exactly backwards


def test_a_reviewer_that_ranked_what_followed_weighs_most_and_one_backwards_least() -> None:
    seen = _seen("pm-a", 0, GOOD) + _seen("pm-a", 1, GOOD) + _seen("pm-b", 0, BAD)
    weights = reviewer_weights(seen, ["pm-a", "pm-b", "pm-new"])
    assert weights == {"pm-a": HIGH, "pm-b": LOW, "pm-new": 1.0}


def test_a_sitting_seen_twice_counts_once_and_small_sittings_not_at_all() -> None:
    once = _seen("pm-a", 0, GOOD) + _seen("pm-a", 1, BAD)
    twice = once + _seen("pm-a", 0, GOOD, run=1) + _seen("pm-a", 1, BAD, run=1)
    assert reviewer_weights(once, ["pm-a"]) == reviewer_weights(twice, ["pm-a"]) == {"pm-a": 1.0}
    tiny = _seen("pm-a", 0, GOOD[:2])  # two pitches: no rank correlation worth the name
    assert reviewer_weights(tiny, ["pm-a"]) == {"pm-a": 1.0}
    assert reviewer_weights(tiny + _seen("pm-a", 0, GOOD[:2], run=1), ["pm-a"]) == {"pm-a": 1.0}


def test_only_the_last_window_sittings_count() -> None:
    seen = [r for w in range(5) for r in _seen("pm-a", w, BAD)] + _seen("pm-a", 5, GOOD)
    assert reviewer_weights(seen, ["pm-a"], window=1) == {"pm-a": HIGH}
    assert reviewer_weights(seen, ["pm-a"], window=2) == {"pm-a": 1.0}  # -1 and +1
    assert reviewer_weights(seen, ["pm-a"], window=6) == {"pm-a": LOW}


def test_weights_can_turn_the_ranking_and_none_leave_it_as_it_was() -> None:
    ballots = [_ballot("pm-a", {1: 0.9, 2: 0.2}), _ballot("pm-b", {1: 0.3, 2: 0.8}),
               _ballot("pm-c", {1: 0.4, 2: 0.6})]  # fmt: skip
    plain = rank_pitches(ballots, [1, 2])
    assert plain.pitch_ids == [2, 1]  # two of three prefer pitch 2
    skilled = rank_pitches(ballots, [1, 2], {"pm-a": 1.5, "pm-b": 0.5, "pm-c": 0.5})
    assert skilled.pitch_ids == [1, 2]
    assert borda(ballots, [1, 2], {"pm-a": 1.0, "pm-b": 1.0, "pm-c": 1.0}) == pytest.approx(
        borda(ballots, [1, 2])
    )
    assert borda(ballots, [1, 2], {"pm-a": 1.5, "pm-b": 0.5, "pm-c": 0.5})[1] == pytest.approx(
        1.5 / 2.5
    )
