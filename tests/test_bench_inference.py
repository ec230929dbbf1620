"""bench/inference.py runs end to end: both models, every runtime, TensorRT's absence shown.

A smoke run only (`--quick`); the timings themselves are the bench's business, not asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from services.inference.tensorrt_runner import tensorrt_absent_reason

BENCH = Path(__file__).resolve().parent.parent / "bench" / "inference.py"


def test_a_quick_run_prints_torch_onnxruntime_and_tensorrt_rows_for_both_models() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--batch", "50"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    assert {"batch of 50 windows:", "batch of 1 window:"} <= set(done.stdout.splitlines())
    for model in ("N-BEATS generic", "PatternCnn"):
        mine = [row for row in rows if row.startswith(f"| {model} |")]
        runtimes = [row.split(" | ")[1] for row in mine]
        assert runtimes.count("torch eager, 1 thread") == 2  # batch 50 and batch 1
        assert runtimes.count("onnxruntime, 1 thread") == 2
        assert runtimes.count("onnxruntime, 2 threads") == 2
        tensorrt = [row for row in mine if row.split(" | ")[1] == "TensorRT"]
        assert len(tensorrt) == 2
        reason = tensorrt_absent_reason()
        if reason is not None:  # no GPU here: the row says why instead of failing the run
            assert all(f"absent: {reason}" in row for row in tensorrt)
