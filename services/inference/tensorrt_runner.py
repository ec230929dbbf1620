"""TensorRT on one CUDA GPU: the optional fast path, raced against ONNX Runtime on CPU.

UNTESTED ON HARDWARE: written against the TensorRT 10 Python API on a machine with
no GPU, where the `gpu` extra (tensorrt, pycuda) cannot be installed. Tested here
(tests/test_inference_tensorrt.py): the absence reasons (nothing installed;
tensorrt without pycuda), the constructor's refusal, the cache key, and that
importing this module loads none of tensorrt, pycuda, onnxruntime. Not tested:
everything past the CUDA device check (engine build and cache, FP16, buffers,
execution, `load`, agreement with OnnxRunner).

TensorRT and pycuda are imported only inside functions. `tensorrt_absent_reason()`
says in one line why the runner cannot work here: tensorrt, then pycuda, not
installed (`importlib.util.find_spec`, importing nothing); TensorRT not 10.x (11
removed the FP16 builder flag); no CUDA device. The constructor raises
`TensorRtUnavailableError` with that line.

Engines are specific to a GPU model and a TensorRT release and take seconds to
minutes to build, so the serialized engine is kept in `cache_dir` under
`engine_cache_key(...)` (ONNX SHA-256, GPU name, compute capability, TensorRT
version, FP16, `max_batch`, `window`): a second start deserializes, and no other
GPU, release or file loads it. An unreadable cached engine is rebuilt. The
profile takes batches of 1 to `max_batch` windows (tuned for `max_batch // 2`);
FP16 is set when asked and the GPU has full-rate FP16 (asked of CUDA: TensorRT
10.5 deprecated `platform_has_fast_fp16`).

One execution context and one set of pinned host and device buffers (sized for
`max_batch`) per engine, so calls on an engine take turns (a lock). The device's
primary CUDA context is pushed around CUDA work, as the racing runner calls from
its own threads. `load` builds and warms a new engine, then swaps it in one
assignment, as OnnxRunner does.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.inference.onnx_runner import FloatArray, ModelLoadError

logger = logging.getLogger(__name__)

INSTALL_HINT = "(pip install 'aitrader[gpu]')"
TENSORRT_MAJOR = 10
DEVICE = 0  # the first CUDA device; one GPU per realtime process


class TensorRtUnavailableError(RuntimeError):
    """TensorRT cannot run here; the message is `tensorrt_absent_reason()`'s line."""


def tensorrt_absent_reason() -> str | None:
    """None when TensorRT can build and run engines here, else why not, in one line."""
    for package in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(package) is None:
            return f"{package} is not installed {INSTALL_HINT}"
    try:
        version = str(_tensorrt().__version__)
    except (ImportError, OSError) as exc:  # OSError: libnvinfer missing beside the wheel
        return f"tensorrt does not import: {_first_line(exc)}"
    if not version.startswith(f"{TENSORRT_MAJOR}."):
        return f"tensorrt {version} is installed; this runner needs TensorRT {TENSORRT_MAJOR}.x"
    try:
        cuda = _cuda()
    except (ImportError, OSError) as exc:  # no libcuda: no NVIDIA driver
        return f"pycuda does not import: {_first_line(exc)}"
    try:
        cuda.init()
        count = int(cuda.Device.count())
    except cuda.Error as exc:
        return f"no CUDA device: {_first_line(exc)}"
    return None if count > 0 else "no CUDA device: the driver reports 0 devices"


def engine_cache_key(
    onnx_sha256: str,
    gpu: str,
    capability: str,
    trt_version: str,
    fp16: bool,
    max_batch: int,
    window: int,
) -> str:
    """Everything an engine depends on, hashed: equal keys may share an engine file.
    Pure; JSON keeps the fields apart ("a" + "bc" is not "ab" + "c")."""
    facts = [onnx_sha256, gpu, capability, trt_version, fp16, max_batch, window]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()


@dataclass(frozen=True)
class _Loaded:
    engine: Any  # trt.ICudaEngine
    context: Any  # trt.IExecutionContext: one call at a time, under `lock`
    stream: Any  # pycuda.driver.Stream
    input_name: str
    output_name: str  # the first output: the scores
    device: dict[str, Any]  # every I/O tensor's DeviceAllocation, sized for max_batch
    host_input: np.ndarray[Any, np.dtype[np.float32]]  # pinned
    host_output: np.ndarray[Any, Any]  # pinned, flat
    version: str
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)


class TensorRtRunner:
    """Serves one model name on the GPU; `load` switches versions without a gap."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        window: int,
        version: str = "1",
        fp16: bool = False,
        cache_dir: Path,
        max_batch: int = 512,
    ) -> None:
        if window < 1 or max_batch < 1:
            raise ValueError("window and max_batch must be >= 1")
        reason = tensorrt_absent_reason()
        if reason is not None:
            raise TensorRtUnavailableError(reason)
        trt, cuda = _tensorrt(), _cuda()
        self.name = name
        self.window = window
        self._fp16 = fp16
        self._cache_dir = Path(cache_dir)
        self._max_batch = max_batch
        device = cuda.Device(DEVICE)
        self._gpu = str(device.name())
        major, minor = device.compute_capability()
        self._capability = (int(major), int(minor))
        self._cuda_context = device.retain_primary_context()  # what TensorRT's cudart uses
        self._trt_log = trt.Logger(trt.Logger.WARNING)  # TensorRT's own messages, to stderr
        self._runtime = trt.Runtime(self._trt_log)  # outlives every engine it deserializes
        self._loaded = self._open(Path(path), version)
        self.reloads = 0

    @property
    def version(self) -> str:
        return self._loaded.version

    def load(self, path: Path, version: str) -> None:
        """Serve `version` from `path` from the next call on. The new engine is built (or
        read from the cache) and run once beside the serving one, then swapped in."""
        loaded = self._open(Path(path), version)
        self._loaded = loaded  # one assignment: calls in progress keep their engine
        self.reloads += 1

    def run(self, windows: FloatArray) -> FloatArray:
        return self._run(self._loaded, windows)  # read once: a reload mid-call changes nothing

    def cancel(self) -> None:
        """Nothing to do: TensorRT cannot stop an enqueued execution. A call runs to the
        end; the racing runner's timeout bounds the wait and drops the late answer."""

    # -- engines ----------------------------------------------------------------------

    def _open(self, path: Path, version: str) -> _Loaded:
        trt, cuda = _tensorrt(), _cuda()
        if not path.is_file():
            raise ModelLoadError(f"{self.name} {version}: no model file at {path}")
        with _current(self._cuda_context):
            engine = self._engine(path, version)
            context = engine.create_execution_context()
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if n not in inputs]
            (input_name,) = inputs  # checked on the network in _build
            if not context.set_input_shape(input_name, (self._max_batch, self.window, 2)):
                raise ModelLoadError(f"{self.name} {version}: the engine refuses max_batch")
            device = {}
            for tensor in names:  # every I/O tensor needs an address, used or not
                shape = tuple(context.get_tensor_shape(tensor))  # at max_batch: the largest
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(tensor)))
                device[tensor] = cuda.mem_alloc(max(math.prod(shape), 1) * dtype.itemsize)
                context.set_tensor_address(tensor, int(device[tensor]))
            output_shape = tuple(context.get_tensor_shape(outputs[0]))
            loaded = _Loaded(
                engine=engine,
                context=context,
                stream=cuda.Stream(),
                input_name=input_name,
                output_name=outputs[0],
                device=device,
                host_input=cuda.pagelocked_empty((self._max_batch, self.window, 2), np.float32),
                host_output=cuda.pagelocked_empty(
                    math.prod(output_shape), trt.nptype(engine.get_tensor_dtype(outputs[0]))
                ),
                version=version,
                path=path,
            )
        self._run(loaded, np.zeros((1, self.window, 2)))  # warm, and fail here, not mid-batch
        return loaded

    def _engine(self, path: Path, version: str) -> Any:
        """The engine for `path` on this GPU: from the cache, else built and cached."""
        trt = _tensorrt()
        with path.open("rb") as file:
            onnx_sha256 = hashlib.file_digest(file, "sha256").hexdigest()
        key = engine_cache_key(
            onnx_sha256,
            self._gpu,
            "{}.{}".format(*self._capability),
            str(trt.__version__),
            self._fp16,
            self._max_batch,
            self.window,
        )
        cached = self._cache_dir / f"{key}.engine"
        facts = {"model": self.name, "version": version, "engine": cached.name}
        if cached.is_file():
            engine = self._runtime.deserialize_cuda_engine(cached.read_bytes())
            if engine is not None:
                logger.info("tensorrt.engine_cached", extra=facts)
                return engine
            logger.warning("tensorrt.engine_cache_unreadable", extra=facts)
        started = time.monotonic()
        serialized = self._build(path, version)
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._cache_dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as file:
            file.write(serialized)
        Path(tmp).replace(cached)  # atomic: a concurrent start reads a whole engine or none
        logger.info("tensorrt.engine_built", extra={**facts, "seconds": time.monotonic() - started})
        engine = self._runtime.deserialize_cuda_engine(serialized)
        if engine is None:
            raise ModelLoadError(f"{self.name} {version}: the engine just built does not load")
        return engine

    def _build(self, path: Path, version: str) -> bytes:
        trt = _tensorrt()
        builder = trt.Builder(self._trt_log)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self._trt_log)
        if not parser.parse_from_file(str(path)):  # from a file: resolves external weights
            detail = parser.get_error(0).desc() if parser.num_errors else "no detail"
            raise ModelLoadError(
                f"{self.name} {version}: {path.name} does not parse: {_first_line(detail)}"
            )
        self._check_input(network, version)
        config = builder.create_builder_config()
        if self._fp16 and _has_fast_fp16(self._capability):
            config.set_flag(trt.BuilderFlag.FP16)
        profile = builder.create_optimization_profile()
        profile.set_shape(
            network.get_input(0).name,
            (1, self.window, 2),
            (max(self._max_batch // 2, 1), self.window, 2),
            (self._max_batch, self.window, 2),
        )
        config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise ModelLoadError(
                f"{self.name} {version}: TensorRT could not build {path.name} "
                "(its log on stderr says why)"
            )
        return bytes(serialized)

    def _check_input(self, network: Any, version: str) -> None:
        """The same contract OnnxRunner checks: one float32 (batch, window, 2) input,
        batch dynamic (-1 in TensorRT's dims)."""
        trt = _tensorrt()
        shapes = [tuple(network.get_input(i).shape) for i in range(network.num_inputs)]
        if len(shapes) != 1 or len(shapes[0]) != 3 or network.num_outputs < 1:
            raise ModelLoadError(
                f"{self.name} {version}: expected one (batch, window, 2) input and an "
                f"output, found inputs {shapes}"
            )
        batch, window, channels = shapes[0]
        if batch != -1:
            raise ModelLoadError(
                f"{self.name} {version}: the batch axis is fixed at {batch}; export it dynamic"
            )
        if window not in (-1, self.window):
            raise ModelLoadError(
                f"{self.name} {version}: the model takes {window}-tick windows, not {self.window}"
            )
        if channels != 2:
            raise ModelLoadError(f"{self.name} {version}: input has {channels} channels, not 2")
        if network.get_input(0).dtype != trt.float32:
            raise ModelLoadError(f"{self.name} {version}: the input is not float32")

    # -- calls ------------------------------------------------------------------------

    def _run(self, loaded: _Loaded, windows: FloatArray) -> FloatArray:
        rows = windows.shape[0] if windows.ndim == 3 else 0
        if windows.shape[1:] != (self.window, 2) or not 1 <= rows <= self._max_batch:
            raise ValueError(
                f"{self.name}: windows of shape {windows.shape}; this engine takes "
                f"(1..{self._max_batch}, {self.window}, 2)"
            )
        cuda = _cuda()
        with loaded.lock, _current(self._cuda_context):
            host_input = loaded.host_input[:rows]
            np.copyto(host_input, windows, casting="same_kind")  # float32, contiguous, pinned
            if not loaded.context.set_input_shape(loaded.input_name, host_input.shape):
                raise RuntimeError(f"{self.name}: the engine refuses {host_input.shape}")
            shape = tuple(loaded.context.get_tensor_shape(loaded.output_name))
            host_output = loaded.host_output[: math.prod(shape)]
            cuda.memcpy_htod_async(loaded.device[loaded.input_name], host_input, loaded.stream)
            if not loaded.context.execute_async_v3(loaded.stream.handle):
                raise RuntimeError(f"{self.name}: TensorRT execution failed (see its log)")
            cuda.memcpy_dtoh_async(host_output, loaded.device[loaded.output_name], loaded.stream)
            loaded.stream.synchronize()
            return host_output.reshape(shape).astype(np.float64)  # a copy: the buffer is reused


@contextmanager
def _current(cuda_context: Any) -> Iterator[None]:
    """Make the device's primary context current on this thread for the block."""
    cuda_context.push()
    try:
        yield
    finally:
        cuda_context.pop()


def _has_fast_fp16(capability: tuple[int, int]) -> bool:
    return capability >= (7, 0) or capability in {(5, 3), (6, 0), (6, 2)}


def _tensorrt() -> Any:
    return importlib.import_module("tensorrt")


def _cuda() -> Any:
    return importlib.import_module("pycuda.driver")


def _first_line(error: BaseException | str) -> str:
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return type(error).__name__ if isinstance(error, BaseException) else "no detail"
