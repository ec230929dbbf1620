"""Walk-forward training of the N-BEATS forecaster, scored against the random walk.

For each fold of `services.ml.splits.walk_forward` (over bar dates, purged by
the horizon so no training label reaches into validation or test), each
stack type (`generic`, `interpretable`) is fitted with early stopping on the
fold's validation bars and the better one by validation loss is scored on
the fold's test bars: MASE, sMAPE and directional accuracy beside the naive
(zero return: a random walk on prices) and seasonal-naive forecasts. The
model kept is the last fold's; its metrics are the folds' test figures
weighted by test size. Daily stock returns are close to a random walk, so
`beats_naive` is often 0: the flow reports it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from models.ml import Stacks
from services.ml.fit import History, fit, predict
from services.ml.metrics import forecast_report
from services.ml.nets import NBeats
from services.ml.windows import Samples
from tasks.training.walk import WalkForwardSpec, folds_of, part


@dataclass(frozen=True)
class ForecasterSpec(WalkForwardSpec):
    stacks: tuple[Stacks, ...] = ("generic", "interpretable")
    blocks: int = 3
    hidden: int = 64
    season: int = 5  # the seasonal naive's period, in bars (a trading week of daily bars)


@dataclass(frozen=True)
class FoldReport:
    fold: int
    stacks: str
    train: int
    valid: int
    test: int
    test_from: str
    test_to: str
    metrics: dict[str, float]
    history: History


@dataclass(frozen=True)
class TrainedForecaster:
    model: NBeats
    stacks: str
    metrics: dict[str, float]
    folds: list[FoldReport]
    holdout: np.ndarray[Any, np.dtype[np.float32]]  # the last fold's test windows
    holdout_target: np.ndarray[Any, np.dtype[np.float64]]
    holdout_insample: np.ndarray[Any, np.dtype[np.float64]]  # its training series (MASE scale)
    season: int

    def holdout_metrics(self, forecast: np.ndarray[Any, Any]) -> dict[str, float]:
        """Another model's figures on the last fold's test windows, as this one was scored."""
        return forecast_report(
            self.holdout_target,
            forecast,
            _window_returns(self.holdout),
            self.holdout_insample,
            season=self.season,
        )


def loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Huber loss in units of each window's return std: fat tails do not steer the fit."""
    assert isinstance(model, NBeats)
    forecast, scale = model.normalised(x)
    return functional.huber_loss(forecast, y / scale, delta=1.0)


def train_forecaster(samples: Samples, spec: ForecasterSpec) -> TrainedForecaster:
    targets = samples.forward_returns()
    if targets.shape[1] != spec.horizon or samples.x.shape[1] != spec.window:
        raise ValueError(
            f"samples are {samples.x.shape[1]}-bar windows with {targets.shape[1]} ahead; "
            f"the spec wants {spec.window} and {spec.horizon}"
        )
    reports: list[FoldReport] = []
    model: NBeats | None = None
    test_x = np.empty((0, spec.window, 2), dtype=np.float32)
    test_y = np.empty((0, spec.horizon))
    insample = np.zeros(1)
    for number, split in enumerate(folds_of(samples, spec)):
        parts = [part(samples, targets, s) for s in (split.train, split.valid, split.test)]
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = parts
        if min(len(train_x), len(valid_x), len(test_x)) == 0:
            raise ValueError(f"fold {number} has an empty split: {[len(p[0]) for p in parts]}")
        fitted = []
        for stacks in spec.stacks:
            torch.manual_seed(spec.fit.seed)
            candidate = NBeats(
                spec.window, spec.horizon, stacks=stacks, blocks=spec.blocks, hidden=spec.hidden
            )
            history = fit(
                candidate, loss, _tensors(train_x, train_y), _tensors(valid_x, valid_y), spec.fit
            )
            fitted.append((history.best_valid, stacks, candidate, history))
        _, stacks, model, history = min(fitted, key=lambda f: f[0])
        forecast = predict(model, test_x)
        insample = np.concatenate([[0.0], np.cumsum(train_y[:, 0])])  # diffs: the returns
        metrics = forecast_report(
            test_y, forecast, _window_returns(test_x), insample, season=spec.season
        )
        dates = samples.dates
        reports.append(
            FoldReport(
                fold=number,
                stacks=stacks,
                train=len(train_x),
                valid=len(valid_x),
                test=len(test_x),
                test_from=dates[split.test.start].date().isoformat(),
                test_to=dates[split.test.stop - 1].date().isoformat(),
                metrics=metrics,
                history=history,
            )
        )
    assert model is not None
    return TrainedForecaster(
        model=model,
        stacks=reports[-1].stacks,
        metrics=pooled(reports),
        folds=reports,
        holdout=test_x,
        holdout_target=test_y,
        holdout_insample=insample,
        season=spec.season,
    )


def pooled(reports: list[FoldReport]) -> dict[str, float]:
    """Each metric averaged over the folds, weighted by their test samples."""
    weights = np.array([r.test for r in reports], dtype=np.float64)
    keys = reports[0].metrics.keys()
    out = {k: float(np.average([r.metrics[k] for r in reports], weights=weights)) for k in keys}
    out["beats_naive"] = float(out["mase"] < out["naive_mase"])
    out["test_samples"] = float(weights.sum())
    return out


def _window_returns(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.diff(np.log(x[:, :, 0].astype(np.float64)), axis=1)


def _tensors(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
