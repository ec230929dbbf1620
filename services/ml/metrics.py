"""Out-of-sample scores of a trained model, each beside the baseline it has to beat.

Forecasts are float64 `(n, h)`: n forecast origins, h steps ahead, row i
column j the forecast made at origin i for step j + 1. The baselines are the
random walk (`naive_forecast`) and the seasonal naive (`seasonal_naive_forecast`);
a model that does not beat the random walk on MASE has shown nothing usable.

Classifiers give probabilities `(n, k)` and integer labels `(n,)` in [0, k);
their baseline is the constant class-frequency forecast (`classifier_report`).

Inputs are validated (shape, finiteness, probability rows) and a mismatch
raises ValueError naming the shapes: a score of a misaligned array is a number
that means nothing. The reports are flat `dict[str, float]` with finite values
only, ready for JSON.

Not here: where the forecasts come from, splits (`splits.py`), plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.integer[Any]]]

PROB_FLOOR = 1e-12
"""Log loss clips probabilities here: one confident miss costs 27.6 nats, not infinity."""
_ROW_SUM_TOLERANCE = 1e-5  # float32 softmax rows, cast to float64, sum to 1 within ~1e-7

# --- forecasting -------------------------------------------------------------------------------


def mase(actual: FloatArray, forecast: FloatArray, insample: FloatArray, season: int = 1) -> float:
    """Mean absolute error over the in-sample mean absolute `season`-step naive error.

    Hyndman & Koehler (2006): the scale is the MAE the naive forecast
    `y[t] = y[t - season]` made on `insample`, the 1-D training series, so 1.0
    means "as good, out of sample, as the naive forecast was in sample". Pass the
    training series in the units of `actual`: for forecasts of log returns, the
    training log prices make the scale the in-sample error of the zero-return
    (random walk) forecast; the training returns themselves would give the
    naive error of the return series, sqrt(2) times larger for iid normal returns.
    Raises ValueError if the scale is 0 or not finite (a flat or too short
    training series has no error to scale by).
    """
    actual, forecast = _forecast_pair(actual, forecast)
    series = np.asarray(insample, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"insample shape {series.shape}: must be 1-D")
    if season < 1 or series.size <= season:
        raise ValueError(f"insample of {series.size} values has no {season}-step naive error")
    scale = float(np.mean(np.abs(series[season:] - series[:-season])))
    if not math.isfinite(scale) or scale == 0.0:
        raise ValueError(f"in-sample {season}-step naive MAE is {scale}: MASE undefined")
    return float(np.mean(np.abs(forecast - actual))) / scale


def smape(actual: FloatArray, forecast: FloatArray) -> float:
    """Symmetric MAPE in percent: 200 * mean(|f - a| / (|a| + |f|)), in [0, 200].

    A cell where both are 0 counts 0. On returns, whose values sit near 0, a
    tiny miss on a tiny value scores near 200, so sMAPE swings with noise:
    read MASE there; sMAPE is for series far from 0 (prices, volumes).
    """
    actual, forecast = _forecast_pair(actual, forecast)
    denominator = np.abs(actual) + np.abs(forecast)
    ratio = np.divide(
        np.abs(forecast - actual),
        denominator,
        out=np.zeros_like(denominator),
        where=denominator > 0,
    )
    return 200.0 * float(np.mean(ratio))


def directional_accuracy(actual: FloatArray, forecast: FloatArray) -> float:
    """Share of cells where sign(forecast) == sign(actual), cells with actual == 0 left out.

    A forecast of exactly 0 where the actual moved counts as a miss. NaN if
    every actual is 0 (nothing to count); inputs must be NaN-free.
    """
    actual, forecast = _forecast_pair(actual, forecast)
    moved = actual != 0
    if not moved.any():
        return math.nan
    return float(np.mean(np.sign(forecast[moved]) == np.sign(actual[moved])))


def naive_forecast(history_last: FloatArray, h: int) -> FloatArray:
    """The random walk's return forecast: zeros `(n, h)`, n = len(history_last).

    A random walk on prices forecasts "no change" at every horizon, that is an
    expected return of 0 at every step, whatever the last value was; the last
    values (one per origin) only fix n. For forecasts of price levels, repeat
    the last price instead.
    """
    last = np.asarray(history_last, dtype=np.float64)
    if last.ndim != 1 or h < 1:
        raise ValueError(f"history_last shape {last.shape}, h={h}: need (n,) and h >= 1")
    return np.zeros((last.shape[0], h), dtype=np.float64)


def seasonal_naive_forecast(history: FloatArray, h: int, season: int) -> FloatArray:
    """Repeat the last season: step j forecasts `history[:, L - season + (j % season)]`.

    `history` is `(n, L)`, each row the series up to its origin, oldest first.
    """
    past = np.asarray(history, dtype=np.float64)
    if past.ndim != 2 or season < 1 or h < 1 or past.shape[1] < season:
        raise ValueError(f"history shape {past.shape}, h={h}, season={season}: need L >= season")
    length = past.shape[1]
    return past[:, length - season + np.arange(h) % season].copy()


def forecast_report(
    actual: FloatArray,
    forecast: FloatArray,
    history: FloatArray,
    insample: FloatArray,
    *,
    season: int,
) -> dict[str, float]:
    """The model's MASE, sMAPE and directional accuracy, then the naive's and seasonal naive's.

    For forecasts of returns: the naive baseline is zeros (`naive_forecast`).
    Keys: `mase`, `smape`, `directional_accuracy`, the same prefixed `naive_`
    and `seasonal_naive_`, and `beats_naive` (1.0 if the model's MASE is
    strictly lower). `history` `(n, L)` feeds the baselines; `season` is the
    seasonal naive's period. All three MASE figures use the one-step in-sample
    scale of `insample` (see `mase`), one yardstick for all three rows.

    Directional accuracy is 0.5 for a forecast with no sign (all zeros, such as
    the random walk's): it calls no direction, so a coin flip is what it is
    worth, where the cell rule would score it 0 and let any model beat it. It
    is 0.5 too when every actual is 0, so that each value stays finite.
    """
    actual, forecast = _forecast_pair(actual, forecast)
    past = np.asarray(history, dtype=np.float64)
    if past.ndim != 2 or past.shape[0] != actual.shape[0]:
        raise ValueError(f"history shape {past.shape} != (n, L) with n of actual {actual.shape}")
    h = actual.shape[1]
    seasonal = seasonal_naive_forecast(past, h, season)  # checks L >= season >= 1 first
    candidates = {
        "": forecast,
        "naive_": naive_forecast(past[:, -1], h),
        "seasonal_naive_": seasonal,
    }
    report: dict[str, float] = {}
    for prefix, candidate in candidates.items():
        report[f"{prefix}mase"] = mase(actual, candidate, insample)
        report[f"{prefix}smape"] = smape(actual, candidate)
        report[f"{prefix}directional_accuracy"] = _direction_or_coin(actual, candidate)
    report["beats_naive"] = float(report["mase"] < report["naive_mase"])
    return report


# --- classification ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalibrationBin:
    """Samples whose top-class confidence fell in [lower, upper) ([lower, 1] for the last bin).

    `confidence` (mean top-class probability) and `accuracy` (share whose top
    class was right) are NaN for an empty bin.
    """

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """The reliability table of the top-class confidence, and its expected calibration error.

    `ece` = sum over bins of count / n * |accuracy - confidence|: the average
    gap, per sample, between how sure the model was and how often it was right.
    Empty bins add nothing.
    """

    bins: tuple[CalibrationBin, ...]
    ece: float


def class_balance(labels: IntArray, k: int) -> list[float]:
    """Share of each class 0..k-1 in `labels`; a class that never occurs gets 0.0."""
    y = _labels(labels, k)
    return [float(share) for share in np.bincount(y, minlength=k) / y.size]


def log_loss(probs: FloatArray, labels: IntArray) -> float:
    """Mean negative log probability (nats) of the true class, clipped to [1e-12, 1]."""
    p, y = _classified(probs, labels)
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], PROB_FLOOR, 1.0))))


def brier(probs: FloatArray, labels: IntArray) -> float:
    """Multi-class Brier: mean over samples of sum over classes of (p - onehot)^2, in [0, 2]."""
    p, y = _classified(probs, labels)
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def accuracy(probs: FloatArray, labels: IntArray) -> float:
    """Share of samples whose most probable class is the label; a tie goes to the lower class."""
    p, y = _classified(probs, labels)
    return float(np.mean(np.argmax(p, axis=1) == y))


def calibration(probs: FloatArray, labels: IntArray, bins: int = 10) -> Calibration:
    """Bin the top-class confidence into `bins` equal widths of [0, 1] (see `Calibration`)."""
    p, y = _classified(probs, labels)
    if bins < 1:
        raise ValueError(f"bins={bins}: must be >= 1")
    confidence = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.arange(bins + 1) / bins  # i / bins correctly rounded, as the table reports it
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    table: list[CalibrationBin] = []
    ece = 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        mean_confidence = float(confidence[members].mean()) if count else math.nan
        hit_rate = float(correct[members].mean()) if count else math.nan
        if count:
            ece += count / y.size * abs(hit_rate - mean_confidence)
        table.append(
            CalibrationBin(float(edges[b]), float(edges[b + 1]), count, mean_confidence, hit_rate)
        )
    return Calibration(bins=tuple(table), ece=ece)


def classifier_report(probs: FloatArray, labels: IntArray, k: int) -> dict[str, float]:
    """Accuracy, log loss, Brier and ECE, beside the constant class-frequency forecast.

    The prior forecasts the class shares of `labels` themselves for every
    sample (`prior_accuracy` is then the majority class's share). It has seen
    the evaluated labels, so it errs towards being harder to beat than a prior
    taken from the training labels. `beats_prior` is 1.0 if the model's log
    loss is strictly lower.
    """
    p, y = _classified(probs, labels)
    if p.shape[1] != k:
        raise ValueError(f"probs shape {p.shape}: need k={k} columns")
    prior = np.tile(np.asarray(class_balance(y, k)), (y.size, 1))
    report = {
        "accuracy": accuracy(p, y),
        "log_loss": log_loss(p, y),
        "brier": brier(p, y),
        "ece": calibration(p, y).ece,
        "prior_accuracy": accuracy(prior, y),
        "prior_log_loss": log_loss(prior, y),
    }
    report["beats_prior"] = float(report["log_loss"] < report["prior_log_loss"])
    return report


def _forecast_pair(actual: FloatArray, forecast: FloatArray) -> tuple[FloatArray, FloatArray]:
    a = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if a.ndim != 2 or a.shape != f.shape or a.size == 0:
        raise ValueError(f"actual shape {a.shape}, forecast shape {f.shape}: need equal (n, h)")
    if not (np.isfinite(a).all() and np.isfinite(f).all()):
        raise ValueError(f"actual {a.shape} or forecast {f.shape} holds NaN or inf")
    return a, f


def _direction_or_coin(actual: FloatArray, forecast: FloatArray) -> float:
    if not forecast.any():
        return 0.5
    score = directional_accuracy(actual, forecast)
    return 0.5 if math.isnan(score) else score


def _classified(probs: FloatArray, labels: IntArray) -> tuple[FloatArray, IntArray]:
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.ndim != 1 or p.shape[0] != y.shape[0] or p.size == 0:
        raise ValueError(f"probs shape {p.shape}, labels shape {y.shape}: need (n, k) and (n,)")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1 + _ROW_SUM_TOLERANCE:
        raise ValueError(f"probs {p.shape}: values must be finite and in [0, 1]")
    off = float(np.max(np.abs(p.sum(axis=1) - 1.0)))
    if off > _ROW_SUM_TOLERANCE:
        raise ValueError(f"probs {p.shape}: a row's sum is {off:.3g} away from 1")
    return p, _labels(y, p.shape[1])


def _labels(labels: IntArray, k: int) -> IntArray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels shape {y.shape}, dtype {y.dtype}: need non-empty integer (n,)")
    if k < 1 or y.min() < 0 or y.max() >= k:
        raise ValueError(f"labels span [{y.min()}, {y.max()}]: need classes in [0, {k})")
    return y
