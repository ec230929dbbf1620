"""The council's review aggregation: labels, Borda ranking, agreement, position bias."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tasks.council.aggregate import (
    LABEL_PATTERN,
    Ballot,
    BallotError,
    agreement,
    assign_labels,
    ballot_from_labels,
    borda,
    label_order,
    position_bias,
    position_effect,
    rank_pitches,
)


def make_ballot(
    reviewer: str = "r1",
    scores: dict[int, float] | None = None,
    positions: dict[int, int] | None = None,
) -> Ballot:
    """A ballot whose pitches were shown in the order the scores are listed, unless told."""
    scores = {1: 0.9, 2: 0.5, 3: 0.1} if scores is None else scores
    if positions is None:
        positions = {pitch_id: i for i, pitch_id in enumerate(scores)}
    return Ballot(reviewer=reviewer, scores=scores, positions=positions)


def kendalls_w(ranks: np.ndarray) -> float:
    """Kendall's W straight from its definition; `ranks` is m reviewers x n pitches, 1..n."""
    m, n = ranks.shape
    totals = ranks.sum(axis=0)
    s = float(((totals - totals.mean()) ** 2).sum())
    return 12 * s / float(m**2 * (n**3 - n))


def ballots_from_ranks(ranks: np.ndarray) -> list[Ballot]:
    """Rank 1 is best, so it gets the highest score."""
    n = ranks.shape[1]
    return [
        make_ballot(f"r{i}", {p: float(n - r) / n for p, r in enumerate(row)})
        for i, row in enumerate(ranks)
    ]


# --- labels -------------------------------------------------------------------


def test_labels_exclude_the_reviewers_own_pitch_and_cover_all_others() -> None:
    labels = assign_labels([10, 11, 12, 13], exclude={12}, rng=random.Random(1))
    assert sorted(labels.values()) == [10, 11, 13]
    assert sorted(labels) == ["A", "B", "C"]


def test_labels_ignore_excluded_ids_that_are_not_pitches() -> None:
    assert sorted(assign_labels([1, 2], exclude={99}, rng=random.Random(0)).values()) == [1, 2]


def test_labels_are_deterministic_per_seed_and_independent_of_input_order() -> None:
    ids = list(range(100, 110))
    first = assign_labels(ids, exclude={103}, rng=random.Random(7))
    again = assign_labels(list(reversed(ids)), exclude={103}, rng=random.Random(7))
    assert first == again


def test_labels_differ_across_seeds() -> None:
    ids = list(range(12))
    orders = {tuple(assign_labels(ids, (), random.Random(seed)).items()) for seed in range(5)}
    assert len(orders) == 5


def test_labels_run_to_two_letters_past_twenty_six() -> None:
    labels = assign_labels(list(range(60)), exclude=(), rng=random.Random(3))
    ordered = label_order(labels)
    assert ordered[:3] == ["A", "B", "C"]
    assert ordered[25:29] == ["Z", "AA", "AB", "AC"]
    assert ordered[-1] == "BH"
    assert all(LABEL_PATTERN.match(label) for label in labels)
    assert sorted(labels.values()) == list(range(60))


def test_labels_refuse_more_pitches_than_two_letters_can_name() -> None:
    assert len(assign_labels(list(range(702)), (), random.Random(0))) == 702
    with pytest.raises(ValueError, match="labels run out"):
        assign_labels(list(range(703)), (), random.Random(0))


def test_labels_refuse_duplicate_pitch_ids() -> None:
    with pytest.raises(ValueError, match="not unique"):
        assign_labels([1, 1, 2], (), random.Random(0))


def test_label_order_refuses_labels_outside_the_pattern() -> None:
    with pytest.raises(ValueError, match="must match"):
        label_order(["A", "a"])


def test_ballot_from_labels_maps_labels_to_pitches_and_display_positions() -> None:
    labels = {"B": 20, "A": 30, "C": 10}
    ballot = ballot_from_labels("r1", labels, {"A": 0.8, "C": 0.2})
    assert ballot.scores == {30: 0.8, 10: 0.2}
    assert ballot.positions == {30: 0, 20: 1, 10: 2}


def test_ballot_from_labels_refuses_a_label_that_was_not_shown() -> None:
    with pytest.raises(BallotError, match="not shown"):
        ballot_from_labels("r1", {"A": 1}, {"A": 0.5, "B": 0.5})


def test_ballot_refuses_a_score_outside_zero_to_one() -> None:
    with pytest.raises(BallotError, match="outside"):
        make_ballot(scores={1: 1.2})


def test_ballot_refuses_a_score_for_a_pitch_it_was_not_shown() -> None:
    with pytest.raises(BallotError, match="without a position"):
        make_ballot(scores={1: 0.5, 2: 0.5}, positions={1: 0})


# --- Borda --------------------------------------------------------------------


def test_borda_normalises_ranks_within_each_ballot() -> None:
    ballots = [
        make_ballot("r1", {1: 0.9, 2: 0.5, 3: 0.1}),  # 1, 0.5, 0
        make_ballot("r2", {1: 0.3, 2: 0.2}),  # 1, 0 (scale does not matter)
        make_ballot("r3", {2: 0.8, 3: 0.7, 4: 0.6, 1: 0.5}),  # 2: 1, 3: 2/3, 4: 1/3, 1: 0
    ]
    assert borda(ballots, [1, 2, 3, 4]) == pytest.approx(
        {1: (1 + 1 + 0) / 3, 2: (0.5 + 0 + 1) / 3, 3: (0 + 2 / 3) / 2, 4: 1 / 3}
    )


def test_borda_gives_tied_pitches_the_average_rank() -> None:
    # Ranks 0, 1.5, 1.5, 3 of n = 4: points 1, 0.5, 0.5, 0.
    ballot = make_ballot("r1", {1: 0.9, 2: 0.5, 3: 0.5, 4: 0.1})
    assert borda([ballot], [1, 2, 3, 4]) == pytest.approx({1: 1.0, 2: 0.5, 3: 0.5, 4: 0.0})


def test_borda_gives_a_pitch_half_a_point_when_all_scores_tie() -> None:
    ballot = make_ballot("r1", {1: 0.4, 2: 0.4, 3: 0.4})
    assert borda([ballot], [1, 2, 3]) == pytest.approx({1: 0.5, 2: 0.5, 3: 0.5})


def test_borda_gives_the_only_pitch_on_a_ballot_half_a_point() -> None:
    ballots = [make_ballot("r1", {1: 0.9}), make_ballot("r2", {1: 0.1, 2: 0.9})]
    assert borda(ballots, [1, 2]) == pytest.approx({1: (0.5 + 0) / 2, 2: 1.0})


def test_borda_leaves_out_pitches_nobody_reviewed() -> None:
    assert borda([make_ballot("r1", {1: 0.2, 2: 0.3})], [1, 2, 3]).keys() == {1, 2}


def test_borda_refuses_a_ballot_scoring_an_unknown_pitch() -> None:
    with pytest.raises(BallotError, match="not under review"):
        borda([make_ballot("r1", {1: 0.2, 9: 0.3})], [1, 2])


def test_borda_refuses_two_ballots_from_one_reviewer() -> None:
    with pytest.raises(BallotError, match="more than one ballot"):
        borda([make_ballot("r1"), make_ballot("r1")], [1, 2, 3])


def test_ranking_orders_by_borda_then_mean_score_then_pitch_id() -> None:
    ballots = [
        make_ballot("r1", {1: 0.9, 2: 0.2}),  # 1: 1, 2: 0
        make_ballot("r2", {2: 0.8, 1: 0.7}),  # 2: 1, 1: 0 -> both Borda 0.5
        make_ballot("r3", {3: 0.6, 4: 0.6}),  # 3 and 4 tie: 0.5 each
    ]
    ranking = rank_pitches(ballots, [5, 4, 3, 2, 1])
    # Mean raw scores 1: 0.8, 3: 0.6, 4: 0.6, 2: 0.5; 3 beats 4 on id; 5 was not reviewed.
    assert ranking.pitch_ids == [1, 3, 4, 2, 5]
    assert ranking.standing(1).reviews == 2
    assert ranking.standing(1).mean_score == pytest.approx(0.8)
    assert ranking.standing(3).borda == pytest.approx(0.5)
    last = ranking.standing(5)
    assert (last.borda, last.mean_score, last.reviews) == (None, None, 0)


def test_ranking_tie_breaks_ignore_float_noise() -> None:
    # Both means are 0.2 in exact arithmetic, and both Borda scores 0.5.
    # Pitch 2's mean comes out 0.20000000000000004, pitch 1's 0.19999999999999998.
    ballots = [
        make_ballot("r1", {1: 0.3, 2: 0.1}),
        make_ballot("r2", {1: 0.0, 2: 0.2}),
        make_ballot("r3", {1: 0.3, 2: 0.3}),
    ]
    ranking = rank_pitches(ballots, [1, 2])
    assert ranking.standing(1).borda == ranking.standing(2).borda
    assert ranking.pitch_ids == [1, 2]


# --- agreement ----------------------------------------------------------------


@pytest.mark.parametrize(("m", "n", "seed"), [(2, 5, 0), (4, 6, 1), (7, 9, 2), (10, 4, 3)])
def test_agreement_equals_kendalls_w_on_complete_rankings_without_ties(
    m: int, n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    ranks = np.array([rng.permutation(n) + 1 for _ in range(m)])
    assert agreement(ballots_from_ranks(ranks)) == pytest.approx(kendalls_w(ranks))


def test_agreement_is_one_for_identical_rankings() -> None:
    ranks = np.array([[1, 2, 3, 4, 5]] * 4)
    assert kendalls_w(ranks) == pytest.approx(1.0)
    assert agreement(ballots_from_ranks(ranks)) == pytest.approx(1.0)


def test_agreement_is_one_when_each_reviewer_skips_its_own_pitch_but_ranks_alike() -> None:
    quality = {1: 0.9, 2: 0.7, 3: 0.5, 4: 0.3, 5: 0.1}
    ballots = [
        make_ballot(f"pm{own}", {p: q for p, q in quality.items() if p != own}) for own in quality
    ]
    assert agreement(ballots) == pytest.approx(1.0)


def test_agreement_is_zero_for_two_opposite_rankings() -> None:
    ranks = np.array([[1, 2, 3, 4], [4, 3, 2, 1]])
    assert kendalls_w(ranks) == pytest.approx(0.0)
    assert agreement(ballots_from_ranks(ranks)) == pytest.approx(0.0)


def test_agreement_is_clamped_at_zero_when_incomplete_ballots_disagree_strongly() -> None:
    # a-b and b-c disagree fully, a-c share too little to count: r = -1 with m = 3 gives -1/3.
    ballots = [
        make_ballot("a", {1: 0.9, 2: 0.5, 3: 0.1}),
        make_ballot("b", {1: 0.1, 2: 0.5, 3: 0.9, 4: 0.95, 5: 0.99}),
        make_ballot("c", {3: 0.9, 4: 0.5, 5: 0.1}),
    ]
    assert agreement(ballots) == 0.0


def test_agreement_is_none_when_no_pair_shares_three_pitches() -> None:
    ballots = [
        make_ballot("a", {1: 0.9, 2: 0.5, 3: 0.1}),
        make_ballot("b", {2: 0.1, 3: 0.5, 4: 0.9}),
    ]
    assert agreement(ballots) is None
    assert agreement([make_ballot("a")]) is None
    assert agreement([]) is None


def test_agreement_skips_a_pair_whose_common_scores_all_tie() -> None:
    ballots = [
        make_ballot("a", {1: 0.9, 2: 0.5, 3: 0.1}),
        make_ballot("b", {1: 0.5, 2: 0.5, 3: 0.5}),
    ]
    assert agreement(ballots) is None


# --- position bias ------------------------------------------------------------


def reviewed_council(n_pitches: int, primacy: float, seed: int) -> list[Ballot]:
    """Each pitch's author reviews the others, shown under shuffled labels.

    A score is the pitch's quality plus noise, plus `primacy` times how early it was shown.
    """
    rng = random.Random(seed)
    ids = list(range(1, n_pitches + 1))
    quality = {p: rng.uniform(0.2, 0.8) for p in ids}
    ballots = []
    for own in ids:
        labels = assign_labels(ids, exclude={own}, rng=rng)
        shown = len(labels)
        label_scores = {}
        for position, label in enumerate(label_order(labels)):
            earliness = 1 - position / (shown - 1)
            raw = quality[labels[label]] + rng.gauss(0, 0.1) + primacy * earliness
            label_scores[label] = min(max(raw, 0.0), 1.0)
        ballots.append(ballot_from_labels(f"pm{own}", labels, label_scores))
    return ballots


def test_position_bias_is_the_mean_score_at_each_display_position() -> None:
    ballots = [
        make_ballot("r1", {1: 0.9, 2: 0.3}, {1: 0, 2: 1}),
        make_ballot("r2", {1: 0.4, 2: 0.7}, {2: 0, 1: 1}),
        make_ballot("r3", {3: 0.2}, {1: 0, 3: 2}),
    ]
    assert position_bias(ballots) == pytest.approx({0: 0.8, 1: 0.35, 2: 0.2})


def test_position_effect_detects_reviewers_that_favour_the_first_pitch_shown() -> None:
    ballots = reviewed_council(n_pitches=12, primacy=0.5, seed=11)
    effect = position_effect(ballots)
    assert effect is not None
    assert effect < -0.5
    bias = position_bias(ballots)
    assert bias[0] > bias[max(bias)] + 0.3


def test_position_effect_is_near_zero_when_reviewers_ignore_display_order() -> None:
    effect = position_effect(reviewed_council(n_pitches=30, primacy=0.0, seed=5))
    assert effect is not None
    assert abs(effect) < 0.1


def test_position_effect_is_negative_for_scores_falling_with_position() -> None:
    ballot = make_ballot("r1", {1: 0.9, 2: 0.6, 3: 0.2})
    assert position_effect([ballot]) == pytest.approx(-1.0)


def test_position_effect_is_none_with_too_few_scores_or_no_variation() -> None:
    assert position_effect([make_ballot("r1", {1: 0.9, 2: 0.1})]) is None
    assert position_effect([make_ballot("r1", {1: 0.5, 2: 0.5, 3: 0.5})]) is None
    assert position_effect([]) is None
