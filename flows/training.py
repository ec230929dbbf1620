"""Training flows: fit a model on stored bars, export it to ONNX, register it, decide it.

`train_forecaster` (N-BEATS) and `train_pattern_classifier` (1-D CNN) run the
same steps; `training` runs either or both and is what the API's `training`
job and the weekly deployment start.

1. Load the bars point in time (`bars_frame`: only bars complete by `end`).
2. Walk-forward training and out-of-sample scoring (tasks/training/).
3. Export to ONNX with a dynamic batch axis; ONNX Runtime must reproduce torch
   on the held-out windows within `PARITY_TOLERANCE` or nothing is registered.
   The file is named by its hash, so a version's file never changes.
4. Register a candidate and decide it (db/queries/model_registry.py): it becomes
   active only if it beats the active version, measured on the same held-out
   bars when the active version never saw them, else on the stored figures;
   `ab=True` makes it the challenger instead.
5. Artifacts: metrics against the baselines, per-fold table, learning curve,
   (classifier) reliability diagram, and the model card, also written beside
   the ONNX file.

torch is the `ml` extra: these flows import it, nothing else in the server does.
"""

from __future__ import annotations

import base64
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.model_registry import Comparison, active, get_version, promote, register
from flows.bars import Bars, load_bars
from flows.job_hooks import JOB_HOOKS, record_result
from models.errors import InvalidInputError
from models.ml import ModelVersion, Stacks
from services.ml.windows import CLASSES, Samples, data_hash, samples_from_frame
from services.settings import get_settings
from tasks.training.card import CardFacts, model_card
from tasks.training.walk import WalkForwardSpec, folds_of

if TYPE_CHECKING:  # torch: imported by the flows when they run, not by whoever imports them
    from torch import nn

    from services.ml.fit import History
    from tasks.training.classifier import ClassifierSpec, TrainedClassifier
    from tasks.training.forecaster import ForecasterSpec, TrainedForecaster

ModelKind = Literal["forecaster", "pattern_classifier"]
METRIC: dict[str, str] = {"forecaster": "mase", "pattern_classifier": "log_loss"}


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
    return _publish(
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
    return _publish(
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


# --- the common tail: export, check, register, decide, report ------------------------------


def _publish(
    *,
    name: str,
    model: nn.Module,
    bars: Bars,
    samples: Samples,
    params: dict[str, Any],
    metrics: dict[str, float],
    baselines: tuple[str, ...],
    folds_rows: list[dict[str, Any]],
    curves: list[tuple[str, History]],
    trained: TrainedForecaster | TrainedClassifier,
    ab: bool,
) -> dict[str, Any]:
    from services.ml.export import PARITY_TOLERANCE, ExportError, export_onnx, file_sha256, parity
    from tasks.training.classifier import TrainedClassifier

    log = get_run_logger()
    settings = get_settings()
    directory = settings.model_dir / name
    staging = directory / f".staging-{id(model)}.onnx"
    export_onnx(model, staging, window=samples.x.shape[1])
    diff = parity(model, staging, trained.holdout)
    if not diff <= PARITY_TOLERANCE:
        staging.unlink(missing_ok=True)
        raise ExportError(
            f"{name}: ONNX Runtime differs from torch by {diff:.3g} on held-out windows "
            f"(limit {PARITY_TOLERANCE:g}); not registered"
        )
    sha = file_sha256(staging)
    onnx_path = (directory / f"{sha[:16]}.onnx").resolve()
    staging.replace(onnx_path)
    metrics = {**metrics, "parity_max_abs_diff": diff}
    holdout_from, holdout_to = folds_rows[-1]["test"].split("..")
    metric = METRIC[name]
    data_from, data_to = bars.span()
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            current = active(session, name)
            measured = None
            if not ab and current is not None:
                measured = _measure(name, current, trained, metric, holdout_from, holdout_to)
            if measured is not None and current is not None:  # kept with the decided version
                metrics[f"holdout_{metric}"] = measured.ours
                metrics[f"holdout_{metric}_active_v{current.version}"] = measured.theirs
            row = register(
                session,
                name=name,
                kind=name,
                onnx_path=str(onnx_path),
                onnx_sha256=sha,
                data_hash=data_hash(bars.frame),
                data_from=data_from,
                data_to=data_to,
                params=params,
                metrics=metrics,
            )
            decided = promote(session, name, row.version, metric=metric, ab=ab, measured=measured)
            version, status, decision = (
                decided.version,
                decided.status.value,
                decided.decision or "",
            )
    finally:
        engine.dispose()
    extra = ""
    if isinstance(trained, TrainedClassifier):
        extra = _calibration_section(trained)
    card = model_card(
        CardFacts(
            name=name,
            version=version,
            status=status,
            decision=decision,
            onnx_path=str(onnx_path),
            onnx_sha256=sha,
            data_hash=data_hash(bars.frame),
            data_from=data_from.date().isoformat(),
            data_to=data_to.date().isoformat(),
            symbols=bars.symbols,
            samples=len(samples),
            dropped_jumps=samples.dropped_jumps,
            params=params,
            parity=diff,
            baselines=baselines,
            metrics=metrics,
            folds=folds_rows,
            extra=extra,
        )
    )
    card_path = directory / f"v{version}.md"
    card_path.write_text(card)
    _keep_card(name, version, card)
    _artifacts(name, version, metrics, baselines, folds_rows, curves, trained, card)
    log.info("%s v%s %s: %s", name, version, status, decision)
    return {
        "name": name,
        "version": version,
        "status": status,
        "decision": decision,
        "metric": metric,
        "metrics": metrics,
        "onnx_path": str(onnx_path),
        "onnx_sha256": sha,
        "card_path": str(card_path.resolve()),
    }


def _keep_card(name: str, version: int, card: str) -> None:
    """The card goes with the version's row too: the API serves it from there, so a server
    on another machine than the training shows it."""
    engine = make_engine(get_settings().database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            get_version(session, name, version).card = card
    finally:
        engine.dispose()


def _measure(
    name: str,
    current: ModelVersion,
    trained: TrainedForecaster | TrainedClassifier,
    metric: str,
    holdout_from: str,
    holdout_to: str,
) -> Comparison | None:
    """Both versions' `metric` on the candidate's last held-out bars, when that is fair:
    the active version must never have seen them and its file must still be what it was.
    None means "compare the stored figures"; the log says why."""
    from services.inference.onnx_runner import ModelLoadError, OnnxRunner
    from services.ml.export import file_sha256

    log = get_run_logger()
    if current.data_to.date().isoformat() >= holdout_from:
        log.info(
            "%s v%s saw bars up to %s, inside the held-out range: stored figures decide",
            name,
            current.version,
            current.data_to.date(),
        )
        return None
    path = Path(current.onnx_path)
    if not path.is_file() or file_sha256(path) != current.onnx_sha256:
        log.warning(
            "%s v%s: %s is missing or changed: stored figures decide", name, current.version, path
        )
        return None
    try:
        window = int(trained.holdout.shape[1])
        runner = OnnxRunner(path, name=name, window=window, version=str(current.version))
    except ModelLoadError as error:
        log.warning("%s: stored figures decide", error)
        return None
    theirs = trained.holdout_metrics(runner.run(trained.holdout.astype(np.float64)))[metric]
    ours = trained.folds[-1].metrics[metric]
    return Comparison(ours, theirs, f"both on held-out bars {holdout_from}..{holdout_to}")


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


def _calibration_section(trained: TrainedClassifier) -> str:
    rows = [
        "## Calibration (top class, held out)",
        "",
        "| confidence | samples | stated | right |",
        "|---|---:|---:|---:|",
    ]
    for b in trained.calibration.bins:
        if b.count:
            rows.append(
                f"| {b.lower:.1f}-{b.upper:.1f} | {b.count} | {b.confidence:.3f} | "
                f"{b.accuracy:.3f} |"
            )
    balance = "/".join(f"{s:.3f}" for s in trained.balance)
    rows += ["", f"ECE {trained.calibration.ece:.4f}. Test labels down/flat/up: {balance}."]
    return "\n".join(rows)


def _artifacts(
    name: str,
    version: int,
    metrics: dict[str, float],
    baselines: tuple[str, ...],
    folds_rows: list[dict[str, Any]],
    curves: list[tuple[str, History]],
    trained: TrainedForecaster | TrainedClassifier,
    card: str,
) -> None:
    from tasks.training.classifier import TrainedClassifier
    from tasks.training.plots import calibration_png, learning_curve_png

    key = name.replace("_", "-")
    table = [
        {"metric": k, "model": v, **{p.rstrip("_"): metrics.get(p + k) for p in baselines}}
        for k, v in metrics.items()
        if not k.startswith(baselines)
    ]
    create_table_artifact(table=table, key=f"{key}-metrics", description=f"{name} v{version}")
    create_table_artifact(
        table=[{k: str(v) for k, v in r.items()} for r in folds_rows],
        key=f"{key}-folds",
        description=f"{name} v{version}: walk-forward folds",
    )
    images = [("learning curve", learning_curve_png(curves, title=f"{name} v{version}"))]
    if isinstance(trained, TrainedClassifier):
        images.append(("calibration", calibration_png(trained.calibration, title=name)))
    for label, png in images:
        url = "data:image/png;base64," + base64.b64encode(png).decode()
        create_markdown_artifact(
            markdown=f"![{label}]({url})",
            key=f"{key}-{label.replace(' ', '-')}",
            description=f"{name} v{version}: {label}",
        )
    create_markdown_artifact(markdown=card, key=f"{key}-card", description=f"{name} v{version}")
