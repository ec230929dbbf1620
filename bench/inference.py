"""Model inference on the realtime hot path: ONNX Runtime against torch eager, in one run.

    .venv/bin/python bench/inference.py              # 500 windows a batch, 5 rounds of 200 calls
    .venv/bin/python bench/inference.py --quick      # smoke run

The two project networks (`services/ml/nets.py`: N-BEATS with generic stacks,
horizon 5, and the pattern CNN) with seeded random weights: untrained, which
changes nothing about speed. Each is exported by `export_onnx` into a
temporary directory and served the way the realtime engine serves it.

Input: `--batch` symbols' windows, float64 `(batch, window, 2)` as the engine
holds them: a random walk in price around 100, volume 1e5..1e6. Then one
window alone, the latency a single signal sees. Rows per model:

1. torch eager, `no_grad`, one thread (the baseline), converting the float64
   windows to a float32 tensor and the scores back to float64 inside the
   timed call, as the runner does;
2. `OnnxRunner.run`, one intra-op thread (the realtime setting);
3. `OnnxRunner(threads=2)`: informational, the machine's two cores;
4. `TensorRtRunner`, or the reason it cannot run here.

Every row is warmed, then timed call by call (`perf_counter_ns`) for `--iters`
calls per round; rounds interleave the rows (rotating the order) so a noisy
spell hits all of them, and the table gives the median over rounds of each
round's p50, p99 and windows/s. "max abs diff" compares each row's scores
with torch's on the same input.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import torch
from torch import nn

from services.inference.onnx_runner import OnnxRunner
from services.inference.tensorrt_runner import TensorRtRunner, tensorrt_absent_reason
from services.ml.export import export_onnx
from services.ml.nets import NBeats, PatternCnn

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Call = Callable[[FloatArray], FloatArray]

HORIZON = 5  # ForecasterSpec's default
WARMUP_CALLS = 20


@dataclass
class Row:
    """One runtime serving one model; `absent` says why it has no timings."""

    model: str
    runtime: str
    call: Call | None
    absent: str | None = None
    baseline: bool = False  # torch eager: the other rows of its model are compared with it
    diff: dict[int, float] = field(default_factory=dict)  # batch -> max |scores - torch's|
    p50_ns: dict[int, list[float]] = field(default_factory=dict)  # batch -> one per round
    p99_ns: dict[int, list[float]] = field(default_factory=dict)
    per_s: dict[int, list[float]] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=200, help="calls per round per row")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 10 calls")
    args = parser.parse_args(argv)
    rounds, iters = (2, 10) if args.quick else (args.rounds, args.iters)

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    nets: dict[str, nn.Module] = {
        "N-BEATS generic": NBeats(args.window, HORIZON, stacks="generic"),
        "PatternCnn": PatternCnn(args.window),
    }
    windows = make_windows(args.batch, args.window, args.seed)
    with tempfile.TemporaryDirectory(prefix="aitrader-inference-bench-") as tmp:
        rows = build_rows(nets, Path(tmp), args.window, args.batch)
        batches = [args.batch] if args.batch == 1 else [args.batch, 1]
        for batch in batches:
            measure(rows, windows[:batch], rounds, iters)

    print(
        f"{_cpu()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )
    print(
        f"random weights (seed {args.seed}, untrained: a speed benchmark), window {args.window}, "
        f"{rounds} rounds x {iters} calls per row, medians over rounds"
    )
    for batch in batches:
        print()
        print(f"batch of {batch} window{'s' if batch > 1 else ''}:")
        print()
        print_table(rows, batch)


def make_windows(n: int, window: int, seed: int) -> FloatArray:
    """`n` symbols' (price, size) windows: each a random walk from a start near 100."""
    rng = np.random.default_rng(seed)
    start = 100 * np.exp(rng.normal(0.0, 0.1, (n, 1)))
    steps = rng.normal(0.0, 0.002, (n, window))
    windows = np.empty((n, window, 2))
    windows[:, :, 0] = start * np.exp(np.cumsum(steps, axis=1))
    windows[:, :, 1] = rng.uniform(1e5, 1e6, (n, window))
    return windows


def build_rows(nets: dict[str, nn.Module], tmp: Path, window: int, batch: int) -> list[Row]:
    """Export each net and open every runtime on the file; torch's row first."""
    reason = tensorrt_absent_reason()
    rows: list[Row] = []
    for name, net in nets.items():
        path = tmp / f"{name.replace(' ', '_')}.onnx"
        export_onnx(net, path, window=window)
        one = OnnxRunner(path, name=name, window=window)
        two = OnnxRunner(path, name=name, window=window, threads=2)
        rows.append(Row(name, "torch eager, 1 thread", _torch_call(net), baseline=True))
        rows.append(Row(name, "onnxruntime, 1 thread", one.run))
        rows.append(Row(name, "onnxruntime, 2 threads", two.run))
        if reason is not None:
            rows.append(Row(name, "TensorRT", None, absent=reason))
        else:
            trt = TensorRtRunner(
                path, name=name, window=window, cache_dir=tmp / "trt", max_batch=max(batch, 1)
            )
            rows.append(Row(name, "TensorRT", trt.run))
    return rows


def measure(rows: list[Row], windows: FloatArray, rounds: int, iters: int) -> None:
    """Warm every row and record its diff against torch, then time the rounds."""
    batch = windows.shape[0]
    live = [row for row in rows if row.call is not None]
    expected: dict[str, FloatArray] = {}
    for row in live:  # each model's torch row comes first
        assert row.call is not None
        for _ in range(WARMUP_CALLS):
            scores = row.call(windows)
        if row.baseline:
            expected[row.model] = scores
        row.diff[batch] = float(np.max(np.abs(scores - expected[row.model])))
    for r in range(rounds):
        for row in live[r % len(live) :] + live[: r % len(live)]:
            assert row.call is not None
            took = _time_calls(row.call, windows, iters)
            row.p50_ns.setdefault(batch, []).append(float(np.percentile(took, 50)))
            row.p99_ns.setdefault(batch, []).append(float(np.percentile(took, 99)))
            row.per_s.setdefault(batch, []).append(batch * len(took) / (took.sum() / 1e9))


def print_table(rows: list[Row], batch: int) -> None:
    print("| model | runtime | p50 | p99 | windows/s | vs torch | max abs diff vs torch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    baseline: dict[str, float] = {}
    for row in rows:
        if row.absent is not None:
            print(f"| {row.model} | {row.runtime} | absent: {row.absent} | | | | |")
            continue
        per_s = statistics.median(row.per_s[batch])
        if row.baseline:
            baseline[row.model] = per_s
        diff = "-" if row.baseline else f"{row.diff[batch]:.1e}"
        print(
            f"| {row.model} | {row.runtime} | {_us(statistics.median(row.p50_ns[batch]))} | "
            f"{_us(statistics.median(row.p99_ns[batch]))} | {per_s:,.0f} | "
            f"{per_s / baseline[row.model]:.2f}x | {diff} |"
        )


def _torch_call(net: nn.Module) -> Call:
    net.eval()

    def call(windows: FloatArray) -> FloatArray:
        with torch.no_grad():
            scores = net(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)))
        return np.asarray(scores.numpy(), dtype=np.float64)

    return call


def _time_calls(call: Call, windows: FloatArray, iters: int) -> np.ndarray[Any, Any]:
    took = np.empty(iters)
    clock = time.perf_counter_ns
    for i in range(iters):
        started = clock()
        call(windows)
        took[i] = clock() - started
    return took


def _us(ns: float) -> str:
    return f"{ns / 1e3:,.0f} us" if ns >= 100_000 else f"{ns / 1e3:.1f} us"


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if sys.platform == "linux" else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
