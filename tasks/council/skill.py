"""Reviewers weighted by how well their scores have ranked what followed (optional).

A reviewer's skill at a sitting is the mean, over its last `window` earlier
sittings with at least three pitches whose outcomes were known by then, of the
rank correlation between the scores it gave and the excess returns the
pitches went on to make (tasks/council_backtest/outcomes.py). Its weight is
`1 + skill`, held to [0.5, 1.5]: a reviewer that ranked perfectly counts
three times one that ranked perfectly backwards, and one with no record counts
1, as every reviewer does unweighted.

Point in time: only reviews of pitches whose exit bar had closed before the
sitting are read (`reviews_with_outcomes`). A sitting sat again (a replay, the
second pass of a backtest) counts once, as its run with the most outcomes known
(the first, on a tie), so a repeated backtest weighs as its first pass did. A
plain and an anonymised sitting of one day are two sittings.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from db.queries.track_record import ReviewSeen
from tasks.council.aggregate import spearman

WINDOW = 12
MIN_PITCHES = 3
LOW, HIGH = 0.5, 1.5


def reviewer_weights(
    seen: Sequence[ReviewSeen], reviewers: Iterable[str], window: int = WINDOW
) -> dict[str, float]:
    """Each of `reviewers`' weight from the reviews in `seen` (1.0 without a record)."""
    by_sitting: dict[str, dict[tuple[datetime, bool], dict[int, list[ReviewSeen]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in seen:
        by_sitting[r.reviewer][r.sitting][r.run_id].append(r)
    weights = {}
    for reviewer in reviewers:
        rhos = []
        for _, runs in sorted(by_sitting.get(reviewer, {}).items()):
            # one run per sitting: the one with the most outcomes known, then the first
            mine = max(runs.items(), key=lambda item: (len(item[1]), -item[0]))[1]
            if len(mine) < MIN_PITCHES:
                continue
            rho = spearman([r.score for r in mine], [r.excess for r in mine])
            if rho is not None:
                rhos.append(rho)
        skill = sum(rhos[-window:]) / len(rhos[-window:]) if rhos else 0.0
        weights[reviewer] = min(HIGH, max(LOW, 1.0 + skill))
    return weights
