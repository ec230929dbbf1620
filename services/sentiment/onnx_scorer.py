"""A sentiment model exported once to ONNX and served by ONNX Runtime on CPU.

`export_onnx` writes `<out_dir>/sentiment/<model digest>.onnx` the first time a
model is asked for and reuses it afterwards (the digest covers config.json and
the weights, transformer.py, so new weights mean a new file). The export is
trusted only after parity: on a fixed set of probe headlines, including one
truncated to the model's maximum length, ONNX Runtime's class probabilities
must match torch's within 1e-5 (services/ml/export.py's bar). The file is
written under a temporary name and renamed only once it passes, so a file
under the final name has passed; a failed export leaves nothing behind.

The graph takes int64 `input_ids`, `attention_mask` and `token_type_ids`
(batch and sequence axes dynamic) and returns the logits; the softmax and the
label map (labels.py) stay in Python, shared with the pipeline. `OnnxScorer`
tokenizes with the model directory's own tokenizer and carries the same `name`
as `PipelineScorer`: same model, same scores.

Session options follow services/inference/onnx_runner.py: `threads` intra-op
threads (default 1: a scorer shares its machine's two cores with the rest of
the stack), one inter-op thread, sequential, every graph optimisation, CPU
provider only.
"""

from __future__ import annotations

import logging
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from services.sentiment.labels import scored
from services.sentiment.scorer import Scored, in_length_order
from services.sentiment.transformer import ClassifierSpec, load_model, model_digest, read_spec

if TYPE_CHECKING:
    import onnxruntime

FloatArray = np.ndarray[Any, np.dtype[np.float64]]

PARITY_TOLERANCE = 1e-5  # max |P_onnx - P_torch| over the probes, as services/ml/export.py
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PROBES = (
    "Acme shares soar after record earnings",
    "Globex plunges on lawsuit",
    "Initech to hold annual meeting",
    "Hooli beats estimates and raises guidance, shares jump 12% in late trading",
    "Umbrella cuts guidance as sales slump",
    "Fed holds rates",
    "Oil",
    "Tesla shares plunge after recall of 2 million vehicles over autopilot concerns",
    "Analysts expect quarterly results in line with estimates",
    "Bankruptcy filing sends stock down 80%",
    "",
    # Longer than any model's maximum: checks truncation and the longest sequence axis.
    " ".join(["markets rally as investors cheer strong jobs data"] * 120),
)


class ParityError(RuntimeError):
    """The exported file does not reproduce torch's probabilities; it was deleted."""


def export_onnx(model_dir: Path, out_dir: Path) -> Path:
    """The checked ONNX file of `model_dir` under `out_dir/sentiment/`, exported if absent.

    Raises `ConfigurationError` if the model directory is unusable (transformer.py),
    `ParityError` if the export disagrees with torch, and whatever torch's exporter raises
    for a model it cannot trace.
    """
    path = out_dir / "sentiment" / f"{model_digest(model_dir)}.onnx"
    if path.is_file():
        return path
    spec = read_spec(model_dir)
    model = load_model(model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.partial.onnx")
    try:
        _export(spec, model, partial)
        diff = _parity(spec, model, partial)
        if not diff <= PARITY_TOLERANCE:  # NaN fails too
            raise ParityError(
                f"sentiment model {model_dir}: the ONNX export differs from torch by "
                f"{diff:.1e} in probability (> {PARITY_TOLERANCE:.0e}); not used"
            )
        partial.replace(path)  # atomic: readers see no file or a checked one
    finally:
        partial.unlink(missing_ok=True)
    return path


class OnnxScorer:
    """Scores with ONNX Runtime on the file `export_onnx` wrote for `model_dir`."""

    def __init__(
        self, model_dir: Path, onnx_path: Path, batch_size: int = 32, threads: int = 1
    ) -> None:
        if batch_size < 1 or threads < 1:
            raise ValueError("batch_size and threads must be >= 1")
        spec = read_spec(model_dir)  # no torch weights: ONNX Runtime has its own copy
        self.name = spec.name
        self.labels = spec.labels
        self.max_length = spec.max_length
        self._tokenizer = spec.tokenizer
        self._batch = batch_size
        self._session = _open_session(onnx_path, threads)
        self._feeds = [i.name for i in self._session.get_inputs()]
        unknown = set(self._feeds) - set(INPUTS)
        if unknown:
            raise ValueError(f"{onnx_path.name}: unexpected inputs {sorted(unknown)}")

    def score(self, texts: Sequence[str]) -> list[Scored]:
        return in_length_order(texts, self._score)

    def _score(self, texts: list[str]) -> list[Scored]:
        return [scored(list(p), self.labels, self.name) for p in self._probabilities(texts)]

    def _probabilities(self, texts: Sequence[str]) -> FloatArray:
        """Class probabilities `(len(texts), n_classes)` in class-index order."""
        chunks = [self._run(texts[i : i + self._batch]) for i in range(0, len(texts), self._batch)]
        return np.concatenate(chunks) if chunks else np.empty((0, len(self.labels)))

    def _run(self, texts: Sequence[str]) -> FloatArray:
        encoded = _encode(self._tokenizer, texts, self.max_length)
        (logits, *_) = self._session.run(None, {k: encoded[k] for k in self._feeds})
        return _softmax(np.asarray(logits, dtype=np.float64))


# -- export ----------------------------------------------------------------------------


def _export(spec: ClassifierSpec, model: Any, path: Path) -> None:
    """torch's dynamo exporter, batch and sequence axes dynamic, example batch of 2.

    The example is 2 x 8 tokens, not 1 x n: torch.export specialises a size-1 axis to the
    constant 1, and the file would then take one text at a time.
    """
    import torch

    module = _logits_module(model)
    batch = torch.export.Dim("batch", min=1, max=65_536)
    sequence = torch.export.Dim("sequence", min=1, max=spec.max_length)
    example = _encode(spec.tokenizer, PROBES[:2], min(8, spec.max_length))
    args = tuple(torch.from_numpy(example[name]) for name in INPUTS)
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            args,
            dynamo=True,
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_shapes=tuple({0: batch, 1: sequence} for _ in INPUTS),
            optimize=True,
            verbose=False,
        )
    if program is None:  # pragma: no cover - dynamo=True always returns the program
        raise RuntimeError("the exporter returned no program")
    program.save(str(path), external_data=False)


def _parity(spec: ClassifierSpec, model: Any, path: Path) -> float:
    """Max |ONNX Runtime - torch| over the probes' class probabilities, read twice: the short
    probes alone (a short sequence axis) and all of them in one batch (the longest)."""
    import torch

    session = _open_session(path, threads=1)
    feeds = [i.name for i in session.get_inputs()]
    accepted = {"input_ids", "attention_mask"} | ({"token_type_ids"} & _forward_parameters(model))
    worst = 0.0
    for texts in (PROBES[:-1], PROBES):
        encoded = _encode(spec.tokenizer, texts, spec.max_length)
        with torch.no_grad():
            logits = model(**{k: torch.from_numpy(v) for k, v in encoded.items() if k in accepted})
        want = _softmax(logits.logits.numpy().astype(np.float64))
        (got, *_) = session.run(None, {k: encoded[k] for k in feeds})
        worst = max(worst, float(np.max(np.abs(_softmax(np.asarray(got, np.float64)) - want))))
    return worst


def _logits_module(model: Any) -> Any:
    """`forward(input_ids, attention_mask, token_type_ids) -> logits`, a plain tensor (the
    exporter cannot return transformers' output objects). A model without token types
    (RoBERTa, DistilBERT) ignores the third input."""
    import torch

    uses_token_types = "token_type_ids" in _forward_parameters(model)

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            extra = {"token_type_ids": token_type_ids} if uses_token_types else {}
            logits: torch.Tensor = self.model(
                input_ids=input_ids, attention_mask=attention_mask, **extra
            ).logits
            return logits

    return Logits().eval()


# -- shared ----------------------------------------------------------------------------


def _encode(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, Any]:
    """int64 `INPUTS` arrays, padded to the longest text, truncated to `max_length`; zeros
    for `token_type_ids` when the tokenizer gives none."""
    encoded = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="np"
    )
    out = {k: np.ascontiguousarray(encoded[k], dtype=np.int64) for k in INPUTS if k in encoded}
    out.setdefault("token_type_ids", np.zeros_like(out["input_ids"]))
    return out


def _open_session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def _softmax(logits: FloatArray) -> FloatArray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float64)


def _forward_parameters(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The dynamo exporter logs its passes at INFO through several loggers; keep them quiet."""
    names = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript", "onnx_ir")
    levels = {n: logging.getLogger(n).level for n in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
