"""What both trainings share: the walk-forward spec, its folds, and a fold's samples.

Torch-free, so the flow can check a range against the folds asked for before it
loads torch and trains anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.ml.fit_config import FitConfig
from services.ml.splits import Split, walk_forward
from services.ml.windows import Samples


@dataclass(frozen=True)
class WalkForwardSpec:
    """Windows of `window` bars, labels `horizon` bars ahead, `folds` test spans of
    `test_bars` (each after `valid_bars` of validation and `min_train_bars` or more of
    training), every gap purged by the horizon."""

    window: int = 32
    horizon: int = 5
    folds: int = 3
    test_bars: int = 63
    valid_bars: int = 63
    min_train_bars: int = 250
    fit: FitConfig = field(default_factory=FitConfig)


def folds_of(samples: Samples, spec: WalkForwardSpec) -> list[Split]:
    """The spec's folds over the samples' bar dates; ValueError (one line) if they do not fit."""
    return walk_forward(
        len(samples.dates),
        folds=spec.folds,
        test_size=spec.test_bars,
        valid_size=spec.valid_bars,
        purge=spec.horizon,
        min_train=spec.min_train_bars,
    )


def part(samples: Samples, values: Any, span: slice) -> tuple[Any, Any]:
    """The windows ending inside `span` (date indexes) and the matching `values` rows."""
    start, stop, _ = span.indices(len(samples.dates))
    mask = (samples.end >= start) & (samples.end < stop)
    return samples.x[mask], values[mask]
