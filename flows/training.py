"""Training flows: fit a model on stored bars, export it to ONNX, register it, decide it.

`train_forecaster` (N-BEATS) and `train_pattern_classifier` (1-D CNN) run the
same steps; `training` runs either or both and is what the API's `training`
job and the weekly deployment start.

1. Load the bars point in time (`bars_frame`: only bars complete by `end`).
2. Walk-forward training and out-of-sample scoring (tasks/training/).
3. Release (flows/model_release.py): export to ONNX checked against torch,
   register, decide against the active version, report (artifacts, model card).

torch is the `ml` extra: these flows import it, nothing else in the server does.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.bars import Bars, load_bars
from flows.job_hooks import JOB_HOOKS, record_result
from flows.model_release import release
from models.errors import InvalidInputError
from models.ml import Stacks
from services.ml.windows import CLASSES, Samples, samples_from_frame
from tasks.training.walk import WalkForwardSpec, folds_of

if TYPE_CHECKING:  # torch: imported by the flows when they run, not by whoever imports them
    from tasks.training.classifier import ClassifierSpec, TrainedClassifier
    from tasks.training.forecaster import ForecasterSpec, TrainedForecaster

ModelKind = Literal["forecaster", "pattern_classifier"]


@task(name="fit-forecaster", cache_policy=NO_CACHE)
def fit_forecaster(samples: Samples, spec: ForecasterSpec) -> TrainedForecaster:
    from tasks.training.forecaster import train_forecaster

    return train_forecaster(samples, spec)


@task(name="fit-classifier", cache_policy=NO_CACHE)
def fit_classifier(samples: Samples, spec: ClassifierSpec) -> TrainedClassifier:
    from tasks.training.classifier import train_classifier

    return train_classifier(samples, spec)


@flow(name="train-forecaster", retries=0, **JOB_HOOKS)
def train_forecaster_flow(
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    window: int = 32,
    horizon: int = 5,
    stacks: list[Stacks] | None = None,
    epochs: int = 10,
    folds: int = 3,
    test_bars: int = 63,
    valid_bars: int = 63,
    min_train_bars: int = 250,
    seed: int = 0,
    ab: bool = False,
    job_id: int | None = None,
) -> dict[str, Any]:
    """N-BEATS on returns; scored by MASE against the random walk."""
    from services.ml.fit_config import FitConfig
    from tasks.training.forecaster import ForecasterSpec

    bars = load_bars(symbols, start, end)
    samples = _samples(bars, window, horizon)
    spec = ForecasterSpec(
        window=window,
        horizon=horizon,
        stacks=tuple(stacks or ("generic", "interpretable")),
        folds=folds,
        test_bars=test_bars,
        valid_bars=valid_bars,
        min_train_bars=min_train_bars,
        fit=FitConfig(epochs=epochs, seed=seed),
    )
    _check_splits(samples, spec)
    trained = fit_forecaster(samples, spec)
    params = {**_spec_params(spec), "stacks_chosen": trained.stacks}
    folds_rows = [
        {
            "fold": f.fold,
            "stacks": f.stacks,
            "test": f"{f.test_from}..{f.test_to}",
            "samples": f.test,
            "mase": f.metrics["mase"],
            "naive mase": f.metrics["naive_mase"],
            "direction": f.metrics["directional_accuracy"],
            "epochs": len(f.history.train),
        }
        for f in trained.folds
    ]
    return release(
        name="forecaster",
        model=trained.model,
        bars=bars,
        samples=samples,
        params=params,
        metrics=trained.metrics,
        baselines=("naive_", "seasonal_naive_"),
        folds_rows=folds_rows,
        curves=[(f"fold {f.fold} {f.stacks}", f.history) for f in trained.folds],
        trained=trained,
        ab=ab,
    )


@flow(name="train-pattern-classifier", retries=0, **JOB_HOOKS)
def train_pattern_classifier_flow(
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    window: int = 32,
    horizon: int = 5,
    threshold: float = 0.5,
    epochs: int = 10,
    folds: int = 3,
    test_bars: int = 63,
    valid_bars: int = 63,
    min_train_bars: int = 250,
    seed: int = 0,
    ab: bool = False,
    job_id: int | None = None,
) -> dict[str, Any]:
    """A 1-D CNN: down, flat or up over `horizon` bars; scored by log loss against the prior."""
    from services.ml.fit_config import FitConfig
    from tasks.training.classifier import ClassifierSpec

    bars = load_bars(symbols, start, end)
    samples = _samples(bars, window, horizon)
    spec = ClassifierSpec(
        window=window,
        horizon=horizon,
        threshold=threshold,
        folds=folds,
        test_bars=test_bars,
        valid_bars=valid_bars,
        min_train_bars=min_train_bars,
        fit=FitConfig(epochs=epochs, seed=seed),
    )
    _check_splits(samples, spec)
    trained = fit_classifier(samples, spec)
    folds_rows = [
        {
            "fold": f.fold,
            "test": f"{f.test_from}..{f.test_to}",
            "samples": f.test,
            "log_loss": f.metrics["log_loss"],
            "prior log_loss": f.metrics["prior_log_loss"],
            "accuracy": f.metrics["accuracy"],
            "temperature": f.temperature,
            "train down/flat/up": [round(b, 3) for b in f.balance],
        }
        for f in trained.folds
    ]
    return release(
        name="pattern_classifier",
        model=trained.model,
        bars=bars,
        samples=samples,
        params={**_spec_params(spec), "classes": list(CLASSES)},
        metrics=trained.metrics,
        baselines=("prior_",),
        folds_rows=folds_rows,
        curves=[(f"fold {f.fold}", f.history) for f in trained.folds],
        trained=trained,
        ab=ab,
    )


@flow(name="training", retries=0, **JOB_HOOKS)
def training(
    models: list[ModelKind] | None = None,
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    window: int = 32,
    horizon: int = 5,
    epochs: int = 10,
    folds: int = 3,
    seed: int = 0,
    ab: bool = False,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Train each of `models` (default both) on the same bars, one after the other."""
    common: dict[str, Any] = {
        "symbols": symbols,
        "start": start,
        "end": end,
        "window": window,
        "horizon": horizon,
        "epochs": epochs,
        "folds": folds,
        "seed": seed,
        "ab": ab,
    }
    results: dict[str, Any] = {}
    for kind in models or ["forecaster", "pattern_classifier"]:
        run = train_forecaster_flow if kind == "forecaster" else train_pattern_classifier_flow
        results[kind] = run(**common)
    record_result(job_id, "trained", results)
    return results


def _samples(bars: Bars, window: int, horizon: int) -> Samples:
    try:
        return samples_from_frame(bars.frame, window=window, horizon=horizon)
    except ValueError as error:
        raise InvalidInputError("symbols", str(error)) from error


def _check_splits(samples: Samples, spec: WalkForwardSpec) -> None:
    """Refuse, before any training, a range too short for the walk-forward asked for."""
    try:
        folds_of(samples, spec)
    except ValueError as error:
        raise InvalidInputError(
            "start", f"{len(samples.dates)} bar days are too few for this walk-forward: {error}"
        ) from error


def _spec_params(spec: WalkForwardSpec) -> dict[str, Any]:
    out = asdict(spec)
    fit = out.pop("fit")
    out.update({"epochs": fit["epochs"], "seed": fit["seed"], "lr": fit["lr"]})
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
