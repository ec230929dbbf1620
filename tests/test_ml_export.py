"""ONNX export of both networks: a file any batch size can call, that ONNX Runtime serves as
torch computes it, named by a hash that depends on the weights and nothing else."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from services.inference.onnx_runner import OnnxRunner
from services.ml.export import PARITY_TOLERANCE, export_onnx, file_sha256, parity
from services.ml.nets import NBeats, PatternCnn

WINDOW, HORIZON = 16, 3

NETS: dict[str, Callable[[], nn.Module]] = {
    "nbeats-generic": lambda: NBeats(WINDOW, HORIZON, blocks=2, hidden=16),
    "nbeats-interpretable": lambda: NBeats(
        WINDOW, HORIZON, stacks="interpretable", blocks=2, hidden=16
    ),
    "pattern-cnn": lambda: PatternCnn(WINDOW, channels=4),
}


def make_net(name: str) -> nn.Module:
    torch.manual_seed(0)
    return NETS[name]().eval()


def engine_windows(n: int, *, seed: int = 0) -> np.ndarray:
    """Float32 `(n, WINDOW, 2)` raw (close, volume) windows, a calm and a wild half, and one
    window of a price that never moved."""
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(n) % 2 == 0, 0.01, 0.06)[:, None]
    close = rng.uniform(5.0, 500.0, (n, 1)) * np.exp(
        np.cumsum(rng.normal(0.0, 1.0, (n, WINDOW)) * sigma, axis=1)
    )
    volume = rng.uniform(1e4, 1e7, (n, WINDOW))
    windows = np.stack([close, volume], axis=2)
    windows[-1, :, 0] = 42.0
    return windows.astype(np.float32)


class Exported(NamedTuple):
    model: nn.Module
    path: Path
    sha256: str


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Exported]:
    """Each net exported once for the module: the exporter takes about a second a file."""
    folder = tmp_path_factory.mktemp("onnx")
    out = {}
    for name in NETS:
        model, path = make_net(name), folder / f"{name}.onnx"
        out[name] = Exported(model, path, export_onnx(model, path, window=WINDOW))
    return out


@pytest.mark.parametrize("name", NETS)
def test_the_file_takes_a_dynamic_batch_of_engine_windows(
    exports: dict[str, Exported], name: str
) -> None:
    (windows,) = onnx.load(str(exports[name].path)).graph.input
    batch, window, channels = windows.type.tensor_type.shape.dim
    assert windows.name == "windows"
    assert windows.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert batch.WhichOneof("value") == "dim_param"  # a name, not a number
    assert (window.dim_value, channels.dim_value) == (WINDOW, 2)


@pytest.mark.parametrize("batch", [1, 500])
@pytest.mark.parametrize("name", NETS)
def test_onnx_runtime_serves_what_torch_computes(
    exports: dict[str, Exported], name: str, batch: int
) -> None:
    model, path, _ = exports[name]
    windows = engine_windows(batch)
    runner = OnnxRunner(path, name=name, window=WINDOW)
    got = runner.run(windows.astype(np.float64))
    with torch.no_grad():
        want = model(torch.from_numpy(windows)).numpy().astype(np.float64)

    assert got.shape == want.shape == (batch, 3)  # HORIZON returns, or 3 class probabilities
    assert np.isfinite(got).all()
    assert parity(model, path, windows) <= PARITY_TOLERANCE
    # The tolerance is absolute and a forecast is a few hundredths; hold it relative too.
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)


def test_the_same_weights_export_to_the_same_bytes_and_other_weights_do_not(
    exports: dict[str, Exported], tmp_path: Path
) -> None:
    model, first_path, first = exports["pattern-cnn"]
    assert first == file_sha256(first_path)
    assert first == hashlib.sha256(first_path.read_bytes()).hexdigest()
    again = export_onnx(copy.deepcopy(model), tmp_path / "nested" / "again.onnx", window=WINDOW)
    assert again == first

    nudged = copy.deepcopy(model)
    assert isinstance(nudged, PatternCnn)
    with torch.no_grad():
        nudged.head.bias[0] += 1e-3  # one weight of one class
    other = export_onnx(nudged, tmp_path / "nudged.onnx", window=WINDOW)
    assert other != first
    assert parity(nudged, tmp_path / "nudged.onnx", engine_windows(8)) <= PARITY_TOLERANCE
