"""The council's habits over a backtest: does display order sway reviewers, do reviewers
agree, do pitches crowd into one sector.

* **Position bias**: Spearman's rho of the position a pitch was shown at
  (0 first) against the score it got, over every score, and per reviewer;
  and the mean score at each position. Labels are shuffled per reviewer, so
  a rho far from 0 is the reviewers', not the data's.
* **Agreement**: Kendall's W of each sitting's ballots
  (tasks/council/aggregate.py `agreement`), and its mean over sittings.
* **Sector dispersion**: pitches per sector, the top sector's share and the
  normalised entropy (1: spread evenly over the sectors pitched, 0: one sector).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from models.council import PeerReview, Pitch
from tasks.council.aggregate import Ballot, agreement, position_bias, position_effect


def bias_report(
    reviews: Sequence[PeerReview], pitches: Sequence[Pitch], sectors: Mapping[str, str]
) -> dict[str, Any]:
    by_run: dict[int, dict[str, Ballot]] = defaultdict(dict)
    grouped: dict[tuple[int, str], list[PeerReview]] = defaultdict(list)
    for review in reviews:
        if review.position is not None:
            grouped[(review.run_id, review.reviewer)].append(review)
    for (run_id, reviewer), rows in grouped.items():
        by_run[run_id][reviewer] = Ballot(
            reviewer=reviewer,
            scores={r.pitch_id: float(r.score) for r in rows},
            positions={r.pitch_id: int(r.position or 0) for r in rows},
        )
    every = [b for ballots in by_run.values() for b in ballots.values()]
    per_reviewer: dict[str, list[Ballot]] = defaultdict(list)
    for ballot in every:
        per_reviewer[ballot.reviewer].append(ballot)
    sittings_w = {run: agreement(list(b.values())) for run, b in sorted(by_run.items())}
    known = [w for w in sittings_w.values() if w is not None]
    return {
        "position_effect": position_effect(every),
        "mean_score_by_position": {str(k): v for k, v in position_bias(every).items()},
        "position_effect_by_reviewer": {
            name: position_effect(ballots) for name, ballots in sorted(per_reviewer.items())
        },
        "agreement_by_run": {str(k): v for k, v in sittings_w.items()},
        "mean_agreement": sum(known) / len(known) if known else None,
        "sectors": sector_dispersion([p.symbol for p in pitches], sectors),
        "sectors_by_member": {
            member: sector_dispersion([p.symbol for p in mine], sectors)
            for member, mine in sorted(_by_member(pitches).items())
        },
    }


def sector_dispersion(symbols: Sequence[str], sectors: Mapping[str, str]) -> dict[str, Any]:
    counts = Counter(sectors.get(s, "unknown") for s in symbols)
    total = sum(counts.values())
    if not total:
        return {"pitches": 0, "by_sector": {}, "top_share": None, "entropy": None}
    shares = [n / total for n in counts.values()]
    entropy = -sum(p * math.log(p) for p in shares)
    return {
        "pitches": total,
        "by_sector": dict(counts.most_common()),
        "top_share": max(shares),
        "entropy": entropy / math.log(len(counts)) if len(counts) > 1 else 0.0,
    }


def _by_member(pitches: Sequence[Pitch]) -> dict[str, list[Pitch]]:
    out: dict[str, list[Pitch]] = defaultdict(list)
    for p in pitches:
        out[p.pm].append(p)
    return out
