"""Tiny ONNX models built in the test, with the shape the runners serve (no weights to
download, no torch): float32 (batch, window, 2) windows in, scores out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def mean_price_model(path: Path, *, window: int | None, scale: float = 1.0) -> Path:
    """Scores each window with `scale` x its mean price; `window=None` leaves it dynamic."""
    windows = helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["batch", window, 2])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch"])
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["windows", "price"], ["prices"], axis=2),
            helper.make_node("ReduceMean", ["prices"], ["mean"], axes=[1], keepdims=0),
            helper.make_node("Mul", ["mean", "scale"], ["scores"]),
        ],
        "mean_price",
        [windows],
        [scores],
        initializer=[
            numpy_helper.from_array(np.array(0, dtype=np.int64), "price"),
            numpy_helper.from_array(np.array(scale, dtype=np.float32), "scale"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def fixed_batch_model(path: Path, *, window: int) -> Path:
    """The same model exported with a batch axis fixed at 1 (a common export mistake)."""
    mean_price_model(path, window=window)
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(model, str(path))
    return path


def constant_model(path: Path, *, window: int, row: list[float]) -> Path:
    """Answers `row` for every window: (batch, len(row)); a NaN in `row` makes a model that
    answers NaN. The window still flows through the graph, so the batch axis is real."""
    windows = helper.make_tensor_value_info("windows", TensorProto.FLOAT, ["batch", window, 2])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", len(row)])
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["windows"], ["mean"], axes=[1, 2], keepdims=0),
            helper.make_node("Unsqueeze", ["mean", "axis"], ["column"]),
            helper.make_node("Mul", ["column", "zero"], ["zeros"]),
            helper.make_node("Add", ["zeros", "row"], ["scores"]),
        ],
        "constant",
        [windows],
        [scores],
        initializer=[
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array([row], dtype=np.float32), "row"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
