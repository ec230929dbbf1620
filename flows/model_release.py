"""Releasing a trained model: export, check, register, decide, report.

What both training flows do once a model is fitted (flows/training.py):

1. Export to ONNX with a dynamic batch axis; ONNX Runtime must reproduce torch on
   the held-out windows within `PARITY_TOLERANCE`, or nothing is registered. The
   file is named by its hash, so a version's file never changes.
2. Register a candidate and decide it (db/queries/model_registry.py): active only if
   it beats the active version, measured on the same held-out bars when the active
   version never saw them, else on the stored figures; `ab=True` makes it the
   challenger instead.
3. Artifacts: metrics against the baselines, per-fold table, learning curve,
   (classifier) reliability diagram, and the model card, kept with the version and
   written beside its file.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.model_registry import Comparison, active, get_version, promote, register
from flows.bars import Bars
from models.ml import ModelVersion
from services.ml.windows import Samples, data_hash
from services.settings import get_settings
from tasks.training.card import CardFacts, model_card

if TYPE_CHECKING:  # torch: loaded by the flow that calls, never by an import of this module
    from torch import nn

    from services.ml.fit import History
    from tasks.training.classifier import TrainedClassifier
    from tasks.training.forecaster import TrainedForecaster

METRIC: dict[str, str] = {"forecaster": "mase", "pattern_classifier": "log_loss"}


def release(
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
