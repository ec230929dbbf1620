"""The model registry: register a trained version, promote it only if it is better.

This module owns a model version's standing (models/enums.py `ModelStatus`):

* `register` adds a version as `candidate`, numbered after the name's newest.
* `promote` makes a candidate `active` when no version of its name is, or when its
  out-of-sample `metric` beats the active version's (strictly); the old one is then
  `retired`. The two figures are the stored ones, or, better, a `Comparison` the
  caller measured for both versions on the same held-out bars (the training flow
  does when it can: stored figures may come from different periods). Otherwise
  the candidate is `refused`, with the two figures in words.
  `ab=True` instead makes it the `challenger`, scored live beside the active version
  and deciding nothing, whatever its metrics.
* One active version per name is also a partial unique index: two promotions racing
  cannot both win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.enums import ModelStatus
from models.errors import ConflictError, InvalidInputError, NotFoundError
from models.ml import ModelVersion

# Metrics where a smaller figure is better; any other is taken as larger-is-better.
LOWER_IS_BETTER = frozenset({"mase", "smape", "mae", "rmse", "log_loss", "brier", "ece"})


@dataclass(frozen=True)
class Comparison:
    """`metric` of the candidate (`ours`) and of the active version (`theirs`), both measured
    on the same data, which `on` names in words ("held-out bars 2019-10-01..2019-12-31")."""

    ours: float
    theirs: float
    on: str


def register(
    session: Session,
    *,
    name: str,
    kind: str,
    onnx_path: str,
    onnx_sha256: str,
    data_hash: str,
    data_from: datetime,
    data_to: datetime,
    params: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelVersion:
    """A new `candidate` version of `name`, numbered one after its newest."""
    if data_to <= data_from:
        raise InvalidInputError("data_to", "must be later than data_from")
    for key, value in metrics.items():  # JSON (and Postgres' JSONB) holds no NaN or inf
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidInputError(f"metrics.{key}", f"must be finite, got {value}")
    newest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.name == name))
    row = ModelVersion(
        name=name,
        version=(newest or 0) + 1,
        kind=kind,
        onnx_path=onnx_path,
        onnx_sha256=onnx_sha256,
        data_hash=data_hash,
        data_from=data_from,
        data_to=data_to,
        params=params,
        metrics=metrics,
        status=ModelStatus.CANDIDATE,
    )
    session.add(row)
    session.flush()
    return row


def get_version(session: Session, name: str, version: int) -> ModelVersion:
    row = session.scalar(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    )
    if row is None:
        raise NotFoundError(f"no version {version} of model {name!r}")
    return row


def active(session: Session, name: str) -> ModelVersion | None:
    """The version of `name` that serves, if any."""
    return session.scalar(
        select(ModelVersion).where(
            ModelVersion.name == name, ModelVersion.status == ModelStatus.ACTIVE
        )
    )


def versions(session: Session, name: str | None = None) -> list[ModelVersion]:
    """Every version, by name then newest first."""
    stmt = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version.desc())
    if name is not None:
        stmt = stmt.where(ModelVersion.name == name)
    return list(session.scalars(stmt))


def promote(
    session: Session,
    name: str,
    version: int,
    *,
    metric: str,
    ab: bool = False,
    measured: Comparison | None = None,
) -> ModelVersion:
    """Decide a candidate's standing (see the module's rules); returns it, decided."""
    row = get_version(session, name, version)
    if row.status is not ModelStatus.CANDIDATE:
        raise ConflictError(f"{name} v{version} is {row.status.value}, not a candidate")
    ours = _figure(row, metric)
    now = utcnow()
    if ab:
        return _decide(
            row,
            ModelStatus.CHALLENGER,
            now,
            f"scored beside the active version ({metric} {ours:.4g})",
        )
    current = active(session, name)
    if current is None:
        why = f"first active version ({metric} {ours:.4g}{_against_baseline(row, metric, ours)})"
        return _decide(row, ModelStatus.ACTIVE, now, why)
    theirs = _figure(current, metric)
    basis = "stored out-of-sample figures"
    if measured is not None:
        if not (math.isfinite(measured.ours) and math.isfinite(measured.theirs)):
            raise InvalidInputError("measured", f"figures must be finite, got {measured}")
        ours, theirs, basis = measured.ours, measured.theirs, measured.on
    lower = metric in LOWER_IS_BETTER
    better = ours < theirs if lower else ours > theirs
    comparison = (
        f"{metric} {ours:.4g} against the active v{current.version}'s {theirs:.4g} ({basis})"
    )
    if not better:
        way = "lower" if lower else "higher"
        return _decide(
            row, ModelStatus.REFUSED, now, f"not better out of sample ({way} wins): {comparison}"
        )
    _decide(current, ModelStatus.RETIRED, now, f"replaced by v{row.version}: {comparison}")
    session.flush()  # the old one leaves `active` before the new one enters it (the index)
    return _decide(row, ModelStatus.ACTIVE, now, f"better out of sample: {comparison}")


def _against_baseline(row: ModelVersion, metric: str, ours: float) -> str:
    """`; beats ...` or `; does not beat ...` the naive or prior baseline stored beside the
    metric, if one is: a first version is served either way, and says which it is."""
    for prefix, name in (("naive_", "the random walk"), ("prior_", "the class prior")):
        value = row.metrics.get(prefix + metric)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            lower = metric in LOWER_IS_BETTER
            better = ours < value if lower else ours > value
            verb = "beats" if better else "does not beat"
            return f"; {verb} {name}'s {value:.4g}"
    return ""


def _figure(row: ModelVersion, metric: str) -> float:
    value = row.metrics.get(metric)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(
            "metric",
            f"{row.name} v{row.version} has no finite {metric!r} (has {sorted(row.metrics)})",
        )
    return float(value)


def _decide(row: ModelVersion, status: ModelStatus, at: datetime, why: str) -> ModelVersion:
    row.status, row.decided_at, row.decision = status, at, why
    return row
