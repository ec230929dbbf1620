"""The models the strategy engine asks: the active version of each, and its challenger.

`refresh` reads the registry (db/queries/model_registry.py) and brings the
served runners in line with it: a newly promoted version is loaded into the
runner already serving (OnnxRunner.load builds the new session beside the
old one and swaps, so no batch is dropped); a version whose window differs
gets a new runner; a name with no active version stops being served. The
realtime process calls it every `MODEL_REFRESH_S` seconds, so a promotion by
the weekly training reaches the engine without a restart.

A challenger (`ab=True` at training) is served beside the active version and
scored on the same windows; its answers are recorded with each suggestion and
decide nothing.

With `tensorrt=True` and TensorRT usable (services/inference/tensorrt_runner.py),
each active model is a race of ONNX Runtime (the reference) and TensorRT;
otherwise ONNX Runtime alone, and `tensorrt_absent` says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.queries.model_registry import active
from models.enums import ModelStatus
from models.ml import ModelVersion
from services.inference.racing import PathStats

logger = logging.getLogger(__name__)

NAMES = ("forecaster", "pattern_classifier")
FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class ServedRunner(Protocol):
    name: str
    window: int

    def run(self, windows: FloatArray) -> FloatArray: ...


@dataclass
class Served:
    """One served version: its runner and what the engine needs to read its answers."""

    name: str
    version: int
    sha256: str
    window: int
    horizon: int
    runner: ServedRunner
    calls: int = 0
    errors: int = 0


@dataclass
class ModelSet:
    sessions: sessionmaker[Session]
    threads: int = 1
    tensorrt: bool = False
    cache_dir: Path = Path("data/models/tensorrt")
    active: dict[str, Served] = field(default_factory=dict)
    challengers: dict[str, Served] = field(default_factory=dict)
    tensorrt_absent: str | None = None
    load_errors: dict[str, str] = field(default_factory=dict)

    @property
    def window(self) -> int:
        """The longest window any served model wants (0: none served)."""
        return max((s.window for s in self._all()), default=0)

    def refresh(self) -> list[str]:
        """Serve what the registry says now; returns each change in words. Blocking."""
        with self.sessions() as session:
            wanted = {name: active(session, name) for name in NAMES}
            trial = {name: _challenger(session, name) for name in NAMES}
            session.expunge_all()
        changes = self._apply(self.active, wanted, challenger=False)
        changes += self._apply(self.challengers, trial, challenger=True)
        return changes

    def stats(self) -> dict[tuple[str, str, str], float]:
        """(model, path, outcome) -> count, for /metrics: a race's per-path counters (paths
        named `onnxruntime` and `tensorrt`), or the single ONNX Runtime path's calls and
        errors."""
        out: dict[tuple[str, str, str], float] = {}
        for role, served in [("active", s) for s in self.active.values()] + [
            ("challenger", s) for s in self.challengers.values()
        ]:
            model = served.name if role == "active" else f"{served.name}:challenger"
            race = getattr(served.runner, "stats", None)
            if callable(race):
                paths: dict[str, PathStats] = race()
                for path, counts in paths.items():
                    for outcome in ("asked", "wins", "errors", "invalid", "timeouts", "late"):
                        out[(model, path, outcome)] = float(getattr(counts, outcome))
                out[(model, "race", "fallbacks")] = float(getattr(served.runner, "fallbacks", 0))
            else:
                out[(model, "onnxruntime", "calls")] = float(served.calls)
                out[(model, "onnxruntime", "errors")] = float(served.errors)
        return out

    def close(self) -> None:
        for served in self._all():
            close = getattr(served.runner, "close", None)
            if callable(close):
                close()

    # -- applying the registry --------------------------------------------------------------

    def _all(self) -> list[Served]:
        return [*self.active.values(), *self.challengers.values()]

    def _apply(
        self,
        serving: dict[str, Served],
        wanted: dict[str, ModelVersion | None],
        *,
        challenger: bool,
    ) -> list[str]:
        changes: list[str] = []
        for name, row in wanted.items():
            label = f"{name} challenger" if challenger else name
            current = serving.get(name)
            if row is None:
                if current is not None:
                    del serving[name]
                    changes.append(f"{label}: v{current.version} no longer served")
                continue
            if current is not None and current.version == row.version:
                continue
            try:
                serving[name] = self._serve(row, current, race=not challenger)
            except Exception as error:  # a bad file must not stop the others: say why, go on
                reason = f"v{row.version} not served: {error}".splitlines()[0]
                if self.load_errors.get(label) != reason:
                    logger.warning("models.load_failed", extra={"model": label, "cause": reason})
                self.load_errors[label] = reason
                continue
            self.load_errors.pop(label, None)
            was = f"v{current.version}" if current else "nothing"
            changes.append(f"{label}: v{row.version} served (was {was})")
        return changes

    def _serve(self, row: ModelVersion, current: Served | None, *, race: bool) -> Served:
        from services.inference.onnx_runner import OnnxRunner

        window = int(row.params.get("window", 32))
        horizon = int(row.params.get("horizon", 1))
        path = Path(row.onnx_path)
        if (
            current is not None
            and current.window == window
            and isinstance(current.runner, OnnxRunner)
        ):
            current.runner.load(path, str(row.version))  # the swap drops no batch
            runner: ServedRunner = current.runner
        else:
            runner = OnnxRunner(  # named for its path: /metrics labels a race's paths by name
                path,
                name="onnxruntime",
                window=window,
                version=str(row.version),
                threads=self.threads,
            )
            if race and self.tensorrt:
                runner = self._race(runner, path, row)
        return Served(row.name, row.version, row.onnx_sha256, window, horizon, runner)

    def _race(self, reference: ServedRunner, path: Path, row: ModelVersion) -> ServedRunner:
        from services.inference.racing import RacingRunner
        from services.inference.tensorrt_runner import TensorRtRunner, tensorrt_absent_reason

        self.tensorrt_absent = tensorrt_absent_reason()
        if self.tensorrt_absent is not None:
            return reference
        challenger = TensorRtRunner(
            path,
            name="tensorrt",
            window=reference.window,
            version=str(row.version),
            cache_dir=self.cache_dir,
        )
        return RacingRunner(reference, challenger)


def _challenger(session: Session, name: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.name == name, ModelVersion.status == ModelStatus.CHALLENGER)
        .order_by(ModelVersion.version.desc())
        .limit(1)
    )
