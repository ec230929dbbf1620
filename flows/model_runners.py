"""The active models, as a flow asks them: ONNX Runtime over the registry's active files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from db.engine import make_engine, make_read_session_factory
from db.queries.model_registry import active
from services.inference.onnx_runner import OnnxRunner
from services.settings import get_settings


@dataclass(frozen=True)
class ActiveModel:
    name: str
    version: int
    window: int
    horizon: int
    runner: OnnxRunner

    def run(self, windows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Scores for `(n, >= window, 2)` windows: the model's last `window` ticks of each."""
        return self.runner.run(np.ascontiguousarray(windows[:, -self.window :, :]))


def active_models(
    names: tuple[str, ...] = ("forecaster", "pattern_classifier"),
) -> dict[str, ActiveModel]:
    """Each of `names` that has an active version; a file that does not load raises (in one
    line, `ModelLoadError`): a job must not quietly score without the model it was given."""
    engine = make_engine(get_settings().database_url)
    try:
        with make_read_session_factory(engine)() as session:
            rows = {name: active(session, name) for name in names}
    finally:
        engine.dispose()
    out: dict[str, ActiveModel] = {}
    for name, row in rows.items():
        if row is None:
            continue
        window = int(row.params.get("window", 32))
        runner = OnnxRunner(Path(row.onnx_path), name=name, window=window, version=str(row.version))
        out[name] = ActiveModel(
            name, row.version, window, int(row.params.get("horizon", 1)), runner
        )
    return out
