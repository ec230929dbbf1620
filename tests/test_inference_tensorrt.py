"""TensorRtRunner where TensorRT is absent, which is every machine this suite runs on.

What can be tested without a GPU: the one-line reason the runner is unavailable
(nothing installed; tensorrt installed but no pycuda), the constructor refusing with
it, the engine cache key, and that importing the module loads none of the heavy
runtimes. Building and running engines is not tested here (see the module docstring).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from services.inference.tensorrt_runner import (
    TensorRtRunner,
    TensorRtUnavailableError,
    engine_cache_key,
    tensorrt_absent_reason,
)
from tests.onnx_models import mean_price_model

REPO = Path(__file__).resolve().parent.parent

without_gpu_extra = pytest.mark.skipif(
    find_spec("tensorrt") is not None or find_spec("pycuda") is not None,
    reason="the gpu extra is installed here: the absence paths do not apply",
)


def make_key(
    *,
    onnx_sha256: str = "ab" * 32,
    gpu: str = "NVIDIA L4",
    capability: str = "8.9",
    trt_version: str = "10.3.0",
    fp16: bool = False,
    max_batch: int = 512,
    window: int = 64,
) -> str:
    return engine_cache_key(onnx_sha256, gpu, capability, trt_version, fp16, max_batch, window)


@without_gpu_extra
def test_absence_reason_names_tensorrt_in_one_line() -> None:
    reason = tensorrt_absent_reason()
    assert reason == "tensorrt is not installed (pip install 'aitrader[gpu]')"
    assert "\n" not in reason


@without_gpu_extra
def test_constructing_the_runner_raises_the_absence_reason(tmp_path: Path) -> None:
    model = mean_price_model(tmp_path / "m.onnx", window=16)
    with pytest.raises(TensorRtUnavailableError) as raised:
        TensorRtRunner(model, name="m", window=16, cache_dir=tmp_path / "engines")
    assert str(raised.value) == tensorrt_absent_reason()
    assert not (tmp_path / "engines").exists()


@without_gpu_extra
def test_tensorrt_without_pycuda_names_pycuda(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert find_spec("tensorrt") is not None  # the fake package is importable
        assert tensorrt_absent_reason() == "pycuda is not installed (pip install 'aitrader[gpu]')"
        assert "tensorrt" not in sys.modules  # decided before importing anything
    finally:
        sys.modules.pop("tensorrt", None)  # never leave the fake for later tests


def test_cache_key_is_stable() -> None:
    key = make_key()
    assert key == make_key()
    assert len(key) == 64
    # Pinned: a change to the key's encoding orphans every cached engine, so make it on purpose.
    assert key == "8a05c8abc097fb4c450c8ba86cd46ed8e6cd2c228fc673718e5c3808842d1745"


@pytest.mark.parametrize(
    ("fact", "other"),
    [
        ("onnx_sha256", "cd" * 32),
        ("gpu", "NVIDIA A10G"),
        ("capability", "8.6"),
        ("trt_version", "10.4.0"),
        ("fp16", True),
        ("max_batch", 256),
        ("window", 32),
    ],
)
def test_cache_key_changes_with_each_fact(fact: str, other: Any) -> None:
    assert make_key(**{fact: other}) != make_key()


def test_cache_key_keeps_fields_apart() -> None:
    assert make_key(gpu="NVIDIA L", capability="48.9") != make_key(
        gpu="NVIDIA L4", capability="8.9"
    )


def test_importing_the_module_loads_no_runtime() -> None:
    code = (
        "import sys, services.inference.tensorrt_runner; "
        "print(sorted({'tensorrt', 'pycuda', 'onnxruntime'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
