"""A local text-classification model (FinBERT-tone or compatible) through the transformers pipeline.

This module owns what a model directory *is* to AITrader: its identity
(`model_name`, shared by both runtimes), and the checked load every runtime
starts from (`read_spec`: config, labels, tokenizer, maximum length; then
`load_model`: the weights, checked). `PipelineScorer` is the transformers
runtime; the ONNX runtime lives in onnx_scorer.py and reuses both.

Strictly offline: every `from_pretrained` is `local_files_only=True`, and the
pipeline is built from the loaded objects, never from a name it could resolve
on the hub. (`HF_HUB_OFFLINE` is not set here: services/settings.py is the one
module that touches the environment; `local_files_only` needs no environment.)

torch and transformers are imported inside the functions that need them, so
the news flow and the lexicon path import this module without paying for them.

Left out on purpose: the choice of runtime and the fallback to the lexicon
(loading.py), and any download.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.errors import ConfigurationError, describe_failure
from services.sentiment.labels import label_map, scored
from services.sentiment.scorer import Label, Scored, in_length_order

WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


@dataclass(frozen=True)
class ClassifierSpec:
    """What a runtime needs besides the weights: identity, labels, tokenizer, length limit."""

    name: str  # model_name(): shared by every runtime of this model
    labels: tuple[Label, ...]  # ours, by class index
    max_length: int  # tokens per text, [CLS] and [SEP] included: longer texts are truncated
    tokenizer: Any  # the directory's own transformers tokenizer


def model_name(model_dir: Path) -> str:
    """The model's identity, stored beside each of its scores: `<dir name>@<8 hex>`.

    The hash covers config.json (architecture and label map) and the weight files, so
    retraining or swapping the weights under the same directory name gives a new name and
    old scores stay attributable. It does not depend on the runtime: the pipeline and the
    ONNX export of one model are parity-checked to 1e-5, so their scores are the same
    model's scores and share the name (services/sentiment/scorer.py).
    """
    # absolute(), not resolve(): a symlink named finbert-tone keeps its name
    return f"{model_dir.absolute().name}@{model_digest(model_dir)[:8]}"


def model_digest(model_dir: Path) -> str:
    """SHA-256 (hex) over config.json and the weight files, each with its name.

    Raises `ConfigurationError` naming the directory if it is missing, not a directory, or
    has no config.json or no weights (model.safetensors, pytorch_model.bin, or their shards).
    """
    config = model_dir / "config.json"
    if not model_dir.exists():
        raise ConfigurationError(f"sentiment model {model_dir}: no such directory")
    if not model_dir.is_dir():
        raise ConfigurationError(f"sentiment model {model_dir}: not a directory")
    if not config.is_file():
        raise ConfigurationError(f"sentiment model {model_dir}: no config.json")
    weights = sorted({p for pattern in WEIGHT_PATTERNS for p in model_dir.glob(pattern)})
    if not weights:
        raise ConfigurationError(
            f"sentiment model {model_dir}: no weights (model.safetensors or pytorch_model.bin)"
        )
    digest = hashlib.sha256()
    for path in [config, *weights]:
        digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_spec(model_dir: Path) -> ClassifierSpec:
    """The directory's identity, label map and tokenizer, offline; no weights are loaded.

    Raises `ConfigurationError` (one line, naming the directory) if the directory is missing
    or incomplete (`model_digest`), config.json does not parse, the labels are not
    positive/negative/neutral (labels.py), or the tokenizer does not load.
    """
    name = model_name(model_dir)
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"sentiment model {model_dir}: config.json does not parse: {describe_failure(exc)}"
        ) from exc
    if not isinstance(config, dict):
        raise ConfigurationError(f"sentiment model {model_dir}: config.json is not an object")
    try:
        labels = label_map(config.get("id2label") or _default_id2label(config))
    except ConfigurationError as exc:
        raise ConfigurationError(f"sentiment model {model_dir}: {exc}") from exc
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    except Exception as exc:  # transformers and tokenizers raise many types for bad files
        raise ConfigurationError(
            f"sentiment model {model_dir}: the tokenizer does not load: {describe_failure(exc)}"
        ) from exc
    positions = int(config.get("max_position_embeddings") or 512)
    # A tokenizer without model_max_length reports ~1e30; RoBERTa-style models have 514
    # positions but take 512 tokens. The smaller of the two is what the model accepts.
    max_length = min(positions, int(getattr(tokenizer, "model_max_length", 0) or positions))
    return ClassifierSpec(name, labels, max_length, tokenizer)


def load_model(model_dir: Path) -> Any:
    """The directory's sequence classifier in eval mode on CPU, loaded offline.

    Raises `ConfigurationError` naming the directory if the weights do not load, or if they
    leave part of the model untrained: transformers fills missing weights (a base BERT with
    no classifier head) with random values and only warns, and the scores would be noise.
    """
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bars in a log
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            str(model_dir), local_files_only=True, output_loading_info=True
        )
    except Exception as exc:  # transformers, safetensors and torch raise a dozen types here
        raise ConfigurationError(
            f"sentiment model {model_dir}: the weights do not load: {describe_failure(exc)}"
        ) from exc
    if missing := sorted(info.get("missing_keys") or []):
        raise ConfigurationError(
            f"sentiment model {model_dir}: the weights lack {', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''} (not a trained classifier)"
        )
    return model.eval()


class PipelineScorer:
    """Scores with `transformers.pipeline("text-classification")` on CPU, `batch_size` texts a
    forward pass, each truncated to the model's maximum length.

    Class probabilities are the pipeline's softmax, asked for explicitly (a config saying
    `multi_label_classification` would otherwise get sigmoids), mapped by label name.
    """

    def __init__(self, model_dir: Path, batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        from transformers import pipeline

        spec = read_spec(model_dir)
        model = load_model(model_dir)
        self.name = spec.name
        self.labels = spec.labels
        self.max_length = spec.max_length
        self._batch = batch_size
        self._index = {str(name): int(i) for i, name in dict(model.config.id2label).items()}
        self._pipe = pipeline(
            "text-classification",
            model=model,
            tokenizer=spec.tokenizer,
            top_k=None,
            device=-1,
        )

    def score(self, texts: Sequence[str]) -> list[Scored]:
        return in_length_order(texts, self._score)

    def _score(self, texts: list[str]) -> list[Scored]:
        if not texts:
            return []
        outputs: Any = self._pipe(  # one list of {label, score} per text
            list(texts),
            batch_size=self._batch,
            truncation=True,
            max_length=self.max_length,
            function_to_apply="softmax",
        )
        out = []
        for classes in outputs:
            probabilities = [0.0] * len(self.labels)
            for entry in classes:
                probabilities[self._index[entry["label"]]] = float(entry["score"])
            out.append(scored(probabilities, self.labels, self.name))
        return out


def _default_id2label(config: dict[str, Any]) -> dict[int, str]:
    """transformers' names for a config without `id2label`: LABEL_0..LABEL_{n-1}."""
    count = int(config.get("num_labels") or len(config.get("label2id") or {}) or 2)
    return {i: f"LABEL_{i}" for i in range(count)}
