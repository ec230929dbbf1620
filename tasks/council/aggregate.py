"""Turn anonymous peer reviews into a ranking, and say how far to trust it.

Reviewers see the other pitches under shuffled labels (A, B, ... Z, AA, AB ...)
and score each in [0, 1]. Raw scores are not comparable across reviewers (one
model's 0.6 is another's 0.8), so pitches are ranked by a normalised Borda
count: only the order within a ballot counts. Two diagnostics go with it:
`agreement` (Kendall's W: do the reviewers rank alike?) and `position_effect`
(does the order of display move the scores?).

Pure: no I/O, no clock; the only randomness is the `random.Random` the caller
passes to `assign_labels`. Deliberately left out: prompting reviewers, parsing
their answers and storing `PeerReview` rows.
"""

from __future__ import annotations

import math
import random
import re
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations

import numpy as np
import numpy.typing as npt

from models.errors import DataError

LABEL_PATTERN = re.compile(r"^[A-Z]{1,2}$")
MAX_LABELS = 26 + 26 * 26
MIN_COMMON_PITCHES = 3
"""A reviewer pair needs this many pitches scored by both to count towards `agreement`."""


class BallotError(DataError):
    """A ballot is malformed or names a pitch the aggregation was not given."""


# --- labels -------------------------------------------------------------------


def assign_labels(
    pitch_ids: Sequence[int], exclude: Collection[int], rng: random.Random
) -> dict[str, int]:
    """Label the pitches not in `exclude` (the reviewer's own) A, B, ... in a shuffled order.

    The ids are sorted before the shuffle, so the labels depend only on the set
    of pitches and the state of `rng`, not on the order the caller lists them.
    Ids in `exclude` that are not pitches are ignored; if every pitch is
    excluded the result is empty. Past 26 pitches labels run AA..AZ, BA..., up
    to ZZ (`MAX_LABELS`).
    """
    if len(set(pitch_ids)) != len(pitch_ids):
        raise ValueError(f"pitch ids are not unique: {sorted(pitch_ids)}")
    shown = sorted(p for p in pitch_ids if p not in exclude)
    if len(shown) > MAX_LABELS:
        raise ValueError(f"{len(shown)} pitches to label; labels run out at {MAX_LABELS}")
    rng.shuffle(shown)
    return {_label(i): pitch_id for i, pitch_id in enumerate(shown)}


def label_order(labels: Iterable[str]) -> list[str]:
    """The display order: A..Z, then AA, AB... (plain string order would put AA before B)."""
    listed = list(labels)
    bad = [label for label in listed if not LABEL_PATTERN.match(label)]
    if bad:
        raise ValueError(f"labels must match {LABEL_PATTERN.pattern}: {bad}")
    if len(set(listed)) != len(listed):
        raise ValueError(f"labels are not unique: {sorted(listed)}")
    return sorted(listed, key=lambda label: (len(label), label))


# --- ballots ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ballot:
    """One reviewer's scores, translated from labels back to pitch ids.

    `positions` holds the 0-based display position of every pitch the reviewer
    was shown; `scores` those it scored, each in [0, 1]. A pitch may be shown
    and left unscored, never scored without having been shown.
    """

    reviewer: str
    scores: dict[int, float]
    positions: dict[int, int]

    def __post_init__(self) -> None:
        bad = {p: s for p, s in self.scores.items() if not (math.isfinite(s) and 0 <= s <= 1)}
        if bad:
            raise BallotError(f"{self.reviewer}: scores outside [0, 1]: {bad}")
        unshown = sorted(self.scores.keys() - self.positions.keys())
        if unshown:
            raise BallotError(f"{self.reviewer}: scored pitches without a position: {unshown}")
        places = list(self.positions.values())
        if min(places, default=0) < 0 or len(set(places)) != len(places):
            raise BallotError(f"{self.reviewer}: positions must be distinct and >= 0: {places}")


def ballot_from_labels(
    reviewer: str, labels: Mapping[str, int], label_scores: Mapping[str, float | Decimal]
) -> Ballot:
    """Build a `Ballot` from `assign_labels`' output and the scores given per label.

    Positions follow `label_order`: A is shown first (position 0).
    """
    unknown = sorted(label_scores.keys() - labels.keys())
    if unknown:
        raise BallotError(f"{reviewer}: scored labels it was not shown: {unknown}")
    return Ballot(
        reviewer=reviewer,
        scores={labels[label]: float(score) for label, score in label_scores.items()},
        positions={labels[label]: i for i, label in enumerate(label_order(labels))},
    )


# --- ranking ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Standing:
    """One pitch's result. `borda` and `mean_score` are None when nobody reviewed it."""

    pitch_id: int
    borda: float | None
    mean_score: float | None
    reviews: int


@dataclass(frozen=True, slots=True)
class Ranking:
    """Every pitch, best first: Borda desc, mean raw score desc, pitch id asc.

    Unreviewed pitches come last, by pitch id.
    """

    standings: tuple[Standing, ...]

    @property
    def pitch_ids(self) -> list[int]:
        return [s.pitch_id for s in self.standings]

    def standing(self, pitch_id: int) -> Standing:
        for s in self.standings:
            if s.pitch_id == pitch_id:
                return s
        raise KeyError(pitch_id)


def borda(
    ballots: Iterable[Ballot],
    pitch_ids: Collection[int],
    weights: Mapping[str, float] | None = None,
) -> dict[int, float]:
    """Normalised Borda score per reviewed pitch, in [0, 1]; unreviewed pitches are absent.

    Within a ballot the scored pitches are ranked best first (rank 0; ties
    share the average rank) and earn (n - 1 - rank) / (n - 1), n being the
    number the ballot scored, so a ballot's best gets 1 and its worst 0
    whatever its scale. A ballot that scored a single pitch gives it 0.5. A
    pitch's score is the mean over the ballots that scored it, weighted by each
    reviewer's `weights` (default 1: tasks/council/skill.py).
    """
    return {p: points for p, (points, _, _) in _tally(ballots, pitch_ids, weights).items()}


def rank_pitches(
    ballots: Iterable[Ballot],
    pitch_ids: Collection[int],
    weights: Mapping[str, float] | None = None,
) -> Ranking:
    """Rank every pitch in `pitch_ids` by `borda` (weighted by `weights`, if given), with
    review counts and mean raw scores."""
    tally = _tally(ballots, pitch_ids, weights)
    # Rounded so that float noise in equal means cannot overrule the tie-breaks.
    best_first = sorted(tally, key=lambda p: (-round(tally[p][0], 12), -round(tally[p][1], 12), p))
    reviewed = [Standing(p, *tally[p]) for p in best_first]
    unreviewed = [Standing(p, None, None, 0) for p in sorted(set(pitch_ids) - tally.keys())]
    return Ranking(tuple(reviewed + unreviewed))


# --- diagnostics --------------------------------------------------------------


def agreement(ballots: Iterable[Ballot]) -> float | None:
    """Kendall's W, adapted to ballots that each skip some pitches (their own, at least).

    W needs every reviewer to rank the same pitches; here no two ballots
    usually do. For complete rankings without ties the identity

        W = ((m - 1) * r + 1) / m

    holds exactly, r being the mean Spearman correlation over all reviewer
    pairs. We use it with r averaged over the pairs that scored at least
    `MIN_COMMON_PITCHES` pitches in common, each pair correlated on those
    common pitches only, and m the number of reviewers in such pairs. Pairs
    whose common scores are all tied (correlation undefined) are skipped too.

    1 is full agreement, 0 none. With incomplete ballots r can fall below the
    -1 / (m - 1) that complete data allows, which would make W negative; it is
    clamped to 0. None when no pair qualifies.
    """
    listed = list(ballots)
    _require_unique_reviewers(listed)
    correlations: list[float] = []
    reviewers: set[str] = set()
    for a, b in combinations(listed, 2):
        common = sorted(a.scores.keys() & b.scores.keys())
        if len(common) < MIN_COMMON_PITCHES:
            continue
        rho = spearman([a.scores[p] for p in common], [b.scores[p] for p in common])
        if rho is None:
            continue
        correlations.append(rho)
        reviewers |= {a.reviewer, b.reviewer}
    if not correlations:
        return None
    m = len(reviewers)
    w = ((m - 1) * float(np.mean(correlations)) + 1) / m
    return min(max(w, 0.0), 1.0)


def position_bias(ballots: Iterable[Ballot]) -> dict[int, float]:
    """Mean score by display position (0 = shown first) over every score of every ballot."""
    by_position: defaultdict[int, list[float]] = defaultdict(list)
    for ballot in ballots:
        for pitch_id, score in ballot.scores.items():
            by_position[ballot.positions[pitch_id]].append(score)
    return {pos: float(np.mean(scores)) for pos, scores in sorted(by_position.items())}


def position_effect(ballots: Iterable[Ballot]) -> float | None:
    """Spearman correlation of display position with score, over every score given.

    Negative means pitches shown earlier score higher (a primacy bias); near 0
    means display order does not matter, which the shuffled labels aim for.
    None with fewer than 3 scores or when positions or scores do not vary.
    """
    pairs = [(b.positions[p], s) for b in ballots for p, s in b.scores.items()]
    if len(pairs) < 3:
        return None
    return spearman([pos for pos, _ in pairs], [score for _, score in pairs])


# --- private ------------------------------------------------------------------


def _label(index: int) -> str:
    if index < 26:
        return chr(ord("A") + index)
    first, second = divmod(index - 26, 26)
    return chr(ord("A") + first) + chr(ord("A") + second)


def _tally(
    ballots: Iterable[Ballot],
    pitch_ids: Collection[int],
    weights: Mapping[str, float] | None = None,
) -> dict[int, tuple[float, float, int]]:
    """Per reviewed pitch: (mean Borda points, weighted by the reviewers' `weights`; mean raw
    score; number of reviews)."""
    listed = list(ballots)
    _require_unique_reviewers(listed)
    known = set(pitch_ids)
    points: defaultdict[int, list[float]] = defaultdict(list)
    counted: defaultdict[int, list[float]] = defaultdict(list)
    raw: defaultdict[int, list[float]] = defaultdict(list)
    for ballot in listed:
        strangers = sorted(ballot.scores.keys() - known)
        if strangers:
            raise BallotError(f"{ballot.reviewer}: scored pitches not under review: {strangers}")
        ids = list(ballot.scores)
        values = np.array([ballot.scores[p] for p in ids], dtype=np.float64)
        n = len(ids)
        earned = (n - 1 - _average_ranks(-values)) / (n - 1) if n > 1 else np.full(n, 0.5)
        weight = 1.0 if weights is None else weights.get(ballot.reviewer, 1.0)
        for pitch_id, got, score in zip(ids, earned, values, strict=True):
            points[pitch_id].append(float(got))
            counted[pitch_id].append(weight)
            raw[pitch_id].append(float(score))
    return {
        p: (
            float(
                np.mean(points[p]) if weights is None else np.average(points[p], weights=counted[p])
            ),
            float(np.mean(raw[p])),
            len(points[p]),
        )
        for p in points
    }


def _require_unique_reviewers(ballots: Sequence[Ballot]) -> None:
    names = [b.reviewer for b in ballots]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise BallotError(f"more than one ballot from: {repeated}")


def _average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """0-based ascending ranks; tied values share the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    mean_rank: npt.NDArray[np.float64] = first + (counts - 1) / 2
    return mean_rank[inverse]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho with average ranks for ties; None when either side is constant."""
    rx = _average_ranks(np.asarray(x, dtype=np.float64))
    ry = _average_ranks(np.asarray(y, dtype=np.float64))
    dx, dy = rx - rx.mean(), ry - ry.mean()
    spread = float(np.sqrt(np.dot(dx, dx) * np.dot(dy, dy)))
    if spread == 0:
        return None
    return min(max(float(np.dot(dx, dy)) / spread, -1.0), 1.0)
