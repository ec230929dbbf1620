"""Walk-forward training of the pattern classifier: down, flat or up after a window.

Labels (services/ml/windows.py `direction_labels`): the log return from the
window's last close to the close `horizon` bars later, against `threshold`
times the window's own volatility scaled to the horizon. Inputs are the
window alone; the label is measured from its last close on, so the features
hold nothing of the label (tests/test_ml_windows.py changes the future and
checks the features are untouched).

Class balance: the loss weights each class by the inverse of its share in the
fold's training labels, so a flat-heavy market does not teach "always flat".
Weighting skews the probabilities, so a temperature is then fitted on the
validation bars (minimum log loss over a grid) and kept in the model; the
calibration table and ECE are measured on the test bars after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional

from services.ml.fit import History, fit, predict
from services.ml.metrics import Calibration, calibration, class_balance, classifier_report
from services.ml.nets import PatternCnn
from services.ml.windows import CLASSES, Samples, direction_labels
from tasks.training.walk import WalkForwardSpec, folds_of, part

TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(4.0), 41))


@dataclass(frozen=True)
class ClassifierSpec(WalkForwardSpec):
    threshold: float = 0.5
    channels: int = 16


@dataclass(frozen=True)
class ClassifierFold:
    fold: int
    train: int
    valid: int
    test: int
    test_from: str
    test_to: str
    balance: list[float]  # training label shares, down/flat/up
    temperature: float
    metrics: dict[str, float]
    history: History


@dataclass(frozen=True)
class TrainedClassifier:
    model: PatternCnn
    metrics: dict[str, float]
    balance: list[float]  # label shares over every test bar
    calibration: Calibration  # pooled over the folds' test bars
    folds: list[ClassifierFold]
    holdout: np.ndarray[Any, np.dtype[np.float32]]  # the last fold's test windows
    holdout_labels: np.ndarray[Any, np.dtype[np.int64]]

    def holdout_metrics(self, probs: np.ndarray[Any, Any]) -> dict[str, float]:
        """Another model's figures on the last fold's test windows, as this one was scored."""
        return classifier_report(probs, self.holdout_labels, len(CLASSES))


def train_classifier(samples: Samples, spec: ClassifierSpec) -> TrainedClassifier:
    if samples.x.shape[1] != spec.window or samples.future.shape[1] - 1 != spec.horizon:
        raise ValueError(
            f"samples are {samples.x.shape[1]}-bar windows with {samples.future.shape[1] - 1} "
            f"ahead; the spec wants {spec.window} and {spec.horizon}"
        )
    labels = direction_labels(samples, threshold=spec.threshold)
    splits = folds_of(samples, spec)
    k = len(CLASSES)
    folds: list[ClassifierFold] = []
    all_probs, all_labels = [], []
    model: PatternCnn | None = None
    test_x = np.empty((0, spec.window, 2), dtype=np.float32)
    test_y = np.empty(0, dtype=np.int64)
    for number, split in enumerate(splits):
        train_x, train_y = part(samples, labels, split.train)
        valid_x, valid_y = part(samples, labels, split.valid)
        test_x, test_y = part(samples, labels, split.test)
        if min(len(train_x), len(valid_x), len(test_x)) == 0:
            raise ValueError(
                f"fold {number} has an empty split: {len(train_x)}, {len(valid_x)}, {len(test_x)}"
            )
        balance = class_balance(train_y, k)
        weights = torch.tensor(
            [1.0 / (k * share) if share > 0 else 0.0 for share in balance], dtype=torch.float32
        )

        def weighted(model: nn.Module, x: Tensor, y: Tensor, w: Tensor = weights) -> Tensor:
            assert isinstance(model, PatternCnn)
            return functional.cross_entropy(model.logits(x), y, weight=w)

        torch.manual_seed(spec.fit.seed)
        model = PatternCnn(spec.window, channels=spec.channels, classes=k)
        history = fit(
            model, weighted, _tensors(train_x, train_y), _tensors(valid_x, valid_y), spec.fit
        )
        temperature = fit_temperature(model, valid_x, valid_y)
        probs = predict(model, test_x)
        folds.append(
            ClassifierFold(
                fold=number,
                train=len(train_x),
                valid=len(valid_x),
                test=len(test_x),
                test_from=samples.dates[split.test.start].date().isoformat(),
                test_to=samples.dates[split.test.stop - 1].date().isoformat(),
                balance=balance,
                temperature=temperature,
                metrics=classifier_report(probs, test_y, k),
                history=history,
            )
        )
        all_probs.append(probs)
        all_labels.append(test_y)
    assert model is not None
    probs, truth = np.concatenate(all_probs), np.concatenate(all_labels)
    metrics = classifier_report(probs, truth, k)
    metrics["test_samples"] = float(truth.size)
    return TrainedClassifier(
        model=model,
        metrics=metrics,
        balance=class_balance(truth, k),
        calibration=calibration(probs, truth),
        folds=folds,
        holdout=test_x,
        holdout_labels=test_y,
    )


def fit_temperature(model: PatternCnn, x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> float:
    """Set the temperature that minimises validation log loss (a grid over 0.25..4)."""
    with torch.no_grad():
        logits = model.logits(torch.from_numpy(x)).double()
        target = torch.from_numpy(y)
        losses = [float(functional.cross_entropy(logits / float(t), target)) for t in TEMPERATURES]
    best = float(TEMPERATURES[int(np.argmin(losses))])
    model.temperature.fill_(best)
    return best


def _tensors(x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> tuple[Tensor, Tensor]:
    return torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
