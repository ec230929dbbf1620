"""ONNX export with a dynamic batch axis, checked by ONNX Runtime against torch.

torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`, which needs
`onnxscript`) traces the model with the batch axis symbolic, so the file
takes one window or 500 in a call. The export is trusted only after ONNX
Runtime, with the session options the realtime runner uses, reproduces
torch's outputs on held-out windows: `parity` returns the largest absolute
difference and the flow refuses to register a file above `PARITY_TOLERANCE`.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PARITY_TOLERANCE = 1e-5


class ExportError(RuntimeError):
    """The exported file does not reproduce the model; the message gives the difference."""


def export_onnx(model: nn.Module, path: Path, *, window: int) -> str:
    """Write `model` to `path` (input `windows`: float32 `(batch, window, 2)`); its SHA-256."""
    model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)  # not the caller's random state
    example = (torch.rand(4, window, 2, generator=generator) + 1.0,)
    batch = torch.export.Dim("batch", min=1, max=65_536)
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model,
            example,
            dynamo=True,
            input_names=["windows"],
            output_names=["scores"],
            dynamic_shapes=({0: batch},),
            optimize=True,
            verbose=False,
        )
    if program is None:  # pragma: no cover - dynamo=True always returns the program
        raise ExportError("the exporter returned no program")
    program.save(str(path))
    return file_sha256(path)


def parity(model: nn.Module, path: Path, windows: np.ndarray[Any, Any]) -> float:
    """Max |torch - ONNX Runtime| over `windows` (float32 `(n, window, 2)`), in one batch."""
    from services.inference.onnx_runner import OnnxRunner

    model.eval()
    runner = OnnxRunner(path, name=path.stem, window=int(windows.shape[1]))
    with torch.no_grad():
        expected = model(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
    got = runner.run(windows.astype(np.float64))
    want = expected.numpy().astype(np.float64).reshape(got.shape)
    return float(np.max(np.abs(got - want))) if got.size else 0.0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _quiet_exporter:  # noqa: N801 - used as a context manager like catch_warnings
    """The dynamo exporter logs its passes at INFO through several loggers; keep them quiet."""

    NAMES = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")

    def __enter__(self) -> None:
        self._levels = {n: logging.getLogger(n).level for n in self.NAMES}
        for name in self.NAMES:
            logging.getLogger(name).setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
