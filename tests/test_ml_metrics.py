"""Forecast and classifier scores, checked by hand with plain loops on tiny arrays."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from services.ml.metrics import (
    accuracy,
    brier,
    calibration,
    class_balance,
    classifier_report,
    directional_accuracy,
    forecast_report,
    log_loss,
    mase,
    naive_forecast,
    seasonal_naive_forecast,
    smape,
)

ACTUAL = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
FORECAST = np.array([[0.5, -1.0, -0.5], [1.0, 2.0, 0.0]])


def _sign(x: float) -> int:
    return int(x > 0) - int(x < 0)


# --- forecasting -------------------------------------------------------------------------------


def test_mase_scales_the_mae_by_the_in_sample_naive_error() -> None:
    insample = np.array([1.0, 3.0, 2.0, 6.0, 5.0])
    abs_errors = [
        abs(f - a)
        for fr, ar in zip(FORECAST.tolist(), ACTUAL.tolist(), strict=True)
        for f, a in zip(fr, ar, strict=True)
    ]
    mae = sum(abs_errors) / len(abs_errors)
    one_step = (2 + 1 + 4 + 1) / 4  # |3-1|, |2-3|, |6-2|, |5-6|
    two_step = (1 + 3 + 3) / 3  # |2-1|, |6-3|, |5-2|
    assert mase(ACTUAL, FORECAST, insample) == pytest.approx(mae / one_step)
    assert mase(ACTUAL, FORECAST, insample, season=2) == pytest.approx(mae / two_step)


def test_a_perfect_forecast_scores_mase_0_smape_0_and_every_direction() -> None:
    insample = np.array([1.0, 2.0, 4.0])
    assert mase(ACTUAL, ACTUAL.copy(), insample) == 0.0
    assert smape(ACTUAL, ACTUAL.copy()) == 0.0
    assert directional_accuracy(ACTUAL, ACTUAL.copy()) == 1.0


def test_the_random_walk_scores_mase_exactly_1_on_a_unit_step_walk() -> None:
    # Prices move by exactly +-1 each step, in sample and out: the in-sample naive error is
    # 1 per step, and so is the zero-return forecast's error on every out-of-sample return.
    steps = np.array([1.0, -1.0, -1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0, 1.0])
    prices = 100.0 + np.cumsum(steps)
    insample, future = prices[:6], steps[6:]
    actual = np.stack([future[0:3], future[3:6]])  # two origins, three returns ahead each
    history = np.stack([steps[3:6], steps[6:9]])  # the returns each origin had seen
    assert mase(actual, naive_forecast(history[:, -1], 3), insample) == 1.0
    report = forecast_report(actual, np.zeros((2, 3)), history, insample, season=1)
    assert report["naive_mase"] == 1.0
    # And in levels, one step ahead: the last price as the forecast is off by 1 every time.
    levels_actual = prices[7:].reshape(-1, 1)
    levels_forecast = prices[6:-1].reshape(-1, 1)
    assert mase(levels_actual, levels_forecast, insample) == 1.0


def test_smape_by_hand_with_a_zero_over_zero_cell() -> None:
    terms = []
    for fr, ar in zip(FORECAST.tolist(), ACTUAL.tolist(), strict=True):
        for f, a in zip(fr, ar, strict=True):
            terms.append(0.0 if a == f == 0 else abs(f - a) / (abs(a) + abs(f)))
    assert smape(ACTUAL, FORECAST) == pytest.approx(200 * sum(terms) / len(terms))
    assert smape(np.array([[0.0, 1.0, -2.0]]), np.array([[0.0, 3.0, 2.0]])) == pytest.approx(
        200 * (0 + 2 / 4 + 4 / 4) / 3
    )


def test_directional_accuracy_skips_unmoved_actuals_and_counts_a_zero_call_as_a_miss() -> None:
    hits = total = 0
    for fr, ar in zip(FORECAST.tolist(), ACTUAL.tolist(), strict=True):
        for f, a in zip(fr, ar, strict=True):
            if a != 0:
                total += 1
                hits += _sign(f) == _sign(a)
    assert (hits, total) == (3, 5)  # the last cell: forecast 0 for an actual of -1
    assert directional_accuracy(ACTUAL, FORECAST) == pytest.approx(hits / total)
    assert math.isnan(directional_accuracy(np.zeros((2, 2)), np.ones((2, 2))))


def test_baselines_forecast_no_change_and_the_last_season_again() -> None:
    assert np.array_equal(naive_forecast(np.array([3.0, -1.0]), 4), np.zeros((2, 4)))
    history = np.array([[1.0, 2.0, 3.0, 4.0, 5.0], [10.0, 20.0, 30.0, 40.0, 50.0]])
    expected = [[3.0, 4.0, 5.0, 3.0, 4.0, 5.0, 3.0], [30.0, 40.0, 50.0, 30.0, 40.0, 50.0, 30.0]]
    assert seasonal_naive_forecast(history, 7, 3).tolist() == expected
    assert seasonal_naive_forecast(history, 2, 5).tolist() == [[1.0, 2.0], [10.0, 20.0]]
    assert seasonal_naive_forecast(history, 3, 1).tolist() == [[5.0] * 3, [50.0] * 3]


def test_forecast_report_is_flat_finite_and_agrees_with_the_parts() -> None:
    history = np.array([[0.5, -1.0, 2.0, 1.0], [-0.5, 0.5, 1.5, -2.0]])
    insample = np.array([1.0, 3.0, 2.0, 6.0, 5.0])
    report = forecast_report(ACTUAL, FORECAST, history, insample, season=2)
    seasonal = np.array([[2.0, 1.0, 2.0], [1.5, -2.0, 1.5]])
    expected = {
        "mase": mase(ACTUAL, FORECAST, insample),
        "smape": smape(ACTUAL, FORECAST),
        "directional_accuracy": 0.6,
        "naive_mase": mase(ACTUAL, np.zeros((2, 3)), insample),
        "naive_smape": 200 * 5 / 6,  # a term of 1 for each of the 5 moved cells, 0 for the other
        "naive_directional_accuracy": 0.5,  # no sign: a coin flip
        "seasonal_naive_mase": mase(ACTUAL, seasonal, insample),
        "seasonal_naive_smape": smape(ACTUAL, seasonal),
        "seasonal_naive_directional_accuracy": directional_accuracy(ACTUAL, seasonal),
    }
    expected["beats_naive"] = float(expected["mase"] < expected["naive_mase"])
    assert report == pytest.approx(expected)
    assert report.keys() == expected.keys()
    assert all(type(v) is float and math.isfinite(v) for v in report.values())
    json.dumps(report, allow_nan=False)


def test_forecast_report_stays_finite_when_nothing_moved() -> None:
    report = forecast_report(
        np.zeros((2, 2)), np.ones((2, 2)), np.ones((2, 3)), np.array([0.0, 1.0]), season=1
    )
    assert report["directional_accuracy"] == 0.5
    assert report["naive_smape"] == 0.0
    assert report["beats_naive"] == 0.0
    json.dumps(report, allow_nan=False)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: mase(ACTUAL, FORECAST[:, :2], np.arange(5.0)), r"actual shape \(2, 3\), forecast"),
        (lambda: smape(ACTUAL[0], FORECAST[0]), r"actual shape \(3,\)"),
        (lambda: directional_accuracy(np.zeros((0, 3)), np.zeros((0, 3))), r"\(0, 3\)"),
        (lambda: smape(ACTUAL, np.full((2, 3), np.nan)), "NaN or inf"),
        (lambda: mase(ACTUAL, FORECAST, np.full(5, 7.0)), "naive MAE is 0.0"),
        (lambda: mase(ACTUAL, FORECAST, np.array([1.0, np.nan, 2.0])), "naive MAE is nan"),
        (lambda: mase(ACTUAL, FORECAST, np.array([1.0, 2.0]), season=2), "no 2-step naive"),
        (lambda: mase(ACTUAL, FORECAST, np.ones((2, 2))), r"insample shape \(2, 2\)"),
        (lambda: seasonal_naive_forecast(np.ones((2, 3)), 2, 4), r"history shape \(2, 3\)"),
        (lambda: naive_forecast(np.ones((2, 3)), 2), r"history_last shape \(2, 3\)"),
        (
            lambda: forecast_report(ACTUAL, FORECAST, np.ones((3, 4)), np.arange(5.0), season=1),
            r"history shape \(3, 4\)",
        ),
    ],
)
def test_forecast_inputs_that_cannot_be_scored_are_refused(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)


# --- classification ----------------------------------------------------------------------------

PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.1, 0.8, 0.1],
        [0.3, 0.3, 0.4],
        [0.0, 0.5, 0.5],
        [0.25, 0.25, 0.5],
    ]
)
LABELS = np.array([0, 2, 2, 0, 1])


def test_class_balance_counts_absent_classes_as_zero() -> None:
    assert class_balance(np.array([0, 2, 2, 1, 2]), 4) == pytest.approx([0.2, 0.2, 0.6, 0.0])


def test_log_loss_brier_and_accuracy_by_hand() -> None:
    nats, squares, right = 0.0, 0.0, 0
    for row, label in zip(PROBS.tolist(), LABELS.tolist(), strict=True):
        nats -= math.log(max(row[label], 1e-12))  # row 3 gives its true class 0
        squares += sum((p - (c == label)) ** 2 for c, p in enumerate(row))
        right += max(range(3), key=lambda c: (row[c], -c)) == label  # first max wins a tie
    assert log_loss(PROBS, LABELS) == pytest.approx(nats / 5)
    assert brier(PROBS, LABELS) == pytest.approx(squares / 5)
    assert accuracy(PROBS, LABELS) == pytest.approx(right / 5)
    assert right == 2  # rows 0 and 2; row 3's tie (classes 1 and 2) goes to class 1


def test_a_perfectly_calibrated_model_has_ece_0() -> None:
    # 4 samples at 0.75 with 3 right, 8 at 0.625 with 5 right: every bin's accuracy is its
    # confidence, and all of these numbers are exact in binary.
    probs = np.array([[0.75, 0.25]] * 4 + [[0.375, 0.625]] * 8)
    labels = np.array([0, 0, 0, 1] + [1] * 5 + [0] * 3)
    table = calibration(probs, labels, bins=4)
    assert table.ece == 0.0
    assert [(b.lower, b.upper, b.count) for b in table.bins] == [
        (0.0, 0.25, 0),
        (0.25, 0.5, 0),
        (0.5, 0.75, 8),
        (0.75, 1.0, 4),  # 0.75 sits on an edge: it opens the upper bin
    ]
    assert (table.bins[2].confidence, table.bins[2].accuracy) == (0.625, 0.625)
    assert math.isnan(table.bins[0].confidence)
    assert math.isnan(table.bins[0].accuracy)


def test_ece_by_hand_weights_each_bin_by_its_count() -> None:
    bins = 10
    groups: dict[int, list[tuple[float, bool]]] = {}
    for row, label in zip(PROBS.tolist(), LABELS.tolist(), strict=True):
        top = max(row)
        b = min(int(top * bins + 1e-9), bins - 1)  # confidences here are far from float edges
        groups.setdefault(b, []).append((top, row.index(top) == label))
    ece = sum(
        len(g) / 5 * abs(sum(ok for _, ok in g) / len(g) - sum(c for c, _ in g) / len(g))
        for g in groups.values()
    )
    table = calibration(PROBS, LABELS, bins)
    assert table.ece == pytest.approx(ece)
    assert [b.count for b in table.bins] == [len(groups.get(b, [])) for b in range(bins)]
    assert calibration(np.array([[1.0, 0.0]]), np.array([0])).bins[-1].count == 1


def test_classifier_report_sets_the_model_beside_the_class_frequencies() -> None:
    report = classifier_report(PROBS, LABELS, 3)
    shares = [2 / 5, 1 / 5, 2 / 5]  # class 0 twice, 1 once, 2 twice
    prior_nats = -sum(math.log(shares[y]) for y in LABELS.tolist()) / 5
    assert report == pytest.approx(
        {
            "accuracy": accuracy(PROBS, LABELS),
            "log_loss": log_loss(PROBS, LABELS),
            "brier": brier(PROBS, LABELS),
            "ece": calibration(PROBS, LABELS).ece,
            "prior_accuracy": 2 / 5,  # class 0, the first of the two majority classes
            "prior_log_loss": prior_nats,
            "beats_prior": 0.0,  # the 1e-12 on row 3's true class costs 27.6 nats
        }
    )
    assert all(type(v) is float and math.isfinite(v) for v in report.values())
    json.dumps(report, allow_nan=False)
    good = classifier_report(np.eye(3)[LABELS] * 0.9 + 0.1 / 3, LABELS, 3)
    assert good["beats_prior"] == 1.0
    assert good["accuracy"] == 1.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: log_loss(PROBS, LABELS[:4]), r"probs shape \(5, 3\), labels shape \(4,\)"),
        (lambda: brier(PROBS[0], LABELS[:1]), r"probs shape \(3,\)"),
        (lambda: accuracy(PROBS, LABELS.astype(float)), "dtype float64"),
        (lambda: accuracy(PROBS, np.array([0, 1, 2, 3, 0])), r"\[0, 3\]: need classes in \[0, 3\)"),
        (lambda: log_loss(PROBS, np.array([0, -1, 2, 2, 0])), r"span \[-1, 2\]"),
        (lambda: brier(PROBS * 0.9, LABELS), "away from 1"),
        (lambda: brier(np.array([[1.5, -0.5]]), np.array([0])), r"in \[0, 1\]"),
        (lambda: classifier_report(PROBS, LABELS, 4), "need k=4"),
        (lambda: class_balance(np.array([], dtype=int), 2), "non-empty"),
        (lambda: calibration(PROBS, LABELS, bins=0), "bins=0"),
    ],
)
def test_classifier_inputs_that_cannot_be_scored_are_refused(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        call()
    assert "\n" not in str(caught.value)
