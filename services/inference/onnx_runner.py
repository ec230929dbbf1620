"""ONNX Runtime on CPU: the default inference path, one session per model version.

Session options (decided here, not left to ONNX Runtime's defaults):

* `intra_op_num_threads` = `threads` (default 1) and `inter_op_num_threads` = 1,
  sequential execution: the realtime process shares two cores with its event loop
  and the pattern engine, and the batches are small (hundreds of windows); ONNX
  Runtime's default of one thread per core spins those threads between calls and
  takes the cores the event loop needs. Raise `threads` for a process that only
  serves models.
* Graph optimisation `ORT_ENABLE_ALL`: fusions are free at load time.
* The CPU execution provider only: a GPU is the TensorRT path's business
  (services/inference/racing.py races the two).

A model takes float32 `(batch, window, 2)` windows (price, size), with the batch
axis dynamic, and returns `(batch,)` or `(batch, k)` scores. `load` builds and
warms a new session beside the one serving, then swaps them in one assignment:
a call in progress finishes on the session it started with, so a promotion drops
no batch. `cancel()` stops the calls in progress (ONNX Runtime's
`RunOptions.terminate`); they raise, which the racing runner counts as late.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

FloatArray = np.ndarray[Any, np.dtype[np.float64]]


class ModelLoadError(ValueError):
    """The file is not a model this runner can serve; the message says why, in one line."""


@dataclass(frozen=True)
class _Loaded:
    session: onnxruntime.InferenceSession
    input_name: str
    version: str
    path: Path


class OnnxRunner:
    """Serves one model name; `load` switches it to another version without a gap."""

    def __init__(
        self, path: Path, *, name: str, window: int, version: str = "1", threads: int = 1
    ) -> None:
        if window < 1 or threads < 1:
            raise ValueError("window and threads must be >= 1")
        self.name = name
        self.window = window
        self._threads = threads
        self._running: set[onnxruntime.RunOptions] = set()
        self._lock = threading.Lock()
        self._loaded = self._open(Path(path), version)
        self.reloads = 0

    @property
    def version(self) -> str:
        return self._loaded.version

    def load(self, path: Path, version: str) -> None:
        """Serve `version` from `path` from the next call on. The new session is built and
        run once before the swap, so a broken file raises here and the old one serves on."""
        loaded = self._open(Path(path), version)
        self._loaded = loaded  # one assignment: calls in progress keep their session
        self.reloads += 1

    def run(self, windows: FloatArray) -> FloatArray:
        return self._run(self._loaded, windows)  # read once: a reload mid-call changes nothing

    def cancel(self) -> None:
        """Stop every call in progress; each raises in its own thread."""
        with self._lock:
            for options in self._running:
                options.terminate = True

    # -- sessions ---------------------------------------------------------------------

    def _open(self, path: Path, version: str) -> _Loaded:
        import onnxruntime as ort  # the realtime process loads it only when a model is served

        if not path.is_file():
            raise ModelLoadError(f"{self.name} {version}: no model file at {path}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ONNX Runtime raises its own Fail/InvalidGraph types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(
                f"{self.name} {version}: {path.name} does not load: {first}"
            ) from exc
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 3:
            raise ModelLoadError(
                f"{self.name} {version}: expected one (batch, window, 2) input, "
                f"found {[(i.name, i.shape) for i in inputs]}"
            )
        batch, window, channels = inputs[0].shape  # a dynamic axis is a name or None
        if isinstance(batch, int):
            raise ModelLoadError(
                f"{self.name} {version}: the batch axis is fixed at {batch}; export it dynamic"
            )
        if isinstance(window, int) and window != self.window:
            raise ModelLoadError(
                f"{self.name} {version}: the model takes {window}-tick windows, not {self.window}"
            )
        if channels != 2:
            raise ModelLoadError(f"{self.name} {version}: input has {channels} channels, not 2")
        loaded = _Loaded(session, inputs[0].name, version, path)
        self._run(loaded, np.zeros((1, self.window, 2)))  # warm, and fail here, not mid-batch
        return loaded

    def _run(self, loaded: _Loaded, windows: FloatArray) -> FloatArray:
        import onnxruntime as ort

        options = ort.RunOptions()
        with self._lock:
            self._running.add(options)
        try:
            feed = {loaded.input_name: np.ascontiguousarray(windows, dtype=np.float32)}
            (scores, *_) = loaded.session.run(None, feed, options)
        finally:
            with self._lock:
                self._running.discard(options)
        return np.asarray(scores, dtype=np.float64)
