"""A classifier's labels read from its config, and its class probabilities turned into `Scored`.

The label order is the model's business: FinBERT-tone is neutral, positive,
negative; ProsusAI/finbert is positive, negative, neutral (docs/decisions/0025).
So the map is read from the config's `id2label`, compared case-insensitively,
and only a config without names of its own (transformers' default
`LABEL_0..LABEL_2`, as FinBERT-tone copies older than May 2022 have) is read in
FinBERT-tone's order. Anything else is refused with the labels found: a
guessed order would silently invert every score.

Pure: no torch, no transformers; both runtimes (services/sentiment/transformer.py
and onnx_scorer.py) share it, so they cannot disagree on what a class means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.errors import ConfigurationError
from services.sentiment.scorer import Label, Scored

# FinBERT-tone's order, used for a config that names its classes LABEL_0..LABEL_2.
FINBERT_TONE_ORDER: tuple[Label, Label, Label] = ("neutral", "positive", "negative")

_NAMES: dict[str, Label] = {
    "positive": "positive",
    "pos": "positive",
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
}


def label_map(id2label: Mapping[Any, str]) -> tuple[Label, ...]:
    """Our label for each class index of a model whose config says `id2label`.

    Keys may be ints or the strings a JSON config holds. Raises `ConfigurationError`
    naming the labels found unless they are exactly positive, negative and neutral (in
    any order, any case, or pos/neg/neu) or exactly LABEL_0..LABEL_2.
    """
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except ValueError:
        raise ConfigurationError(_refusal(id2label, "class indices are not integers")) from None
    names = [by_index[i] for i in sorted(by_index)]
    if sorted(by_index) != list(range(len(by_index))):
        raise ConfigurationError(_refusal(id2label, "class indices are not 0..n-1"))
    if [n.upper() for n in names] == ["LABEL_0", "LABEL_1", "LABEL_2"]:
        return FINBERT_TONE_ORDER
    ours = tuple(_NAMES.get(n.strip().lower()) for n in names)
    if len(ours) != 3 or None in ours or len(set(ours)) != 3:
        raise ConfigurationError(
            _refusal(id2label, "expected positive, negative and neutral, or LABEL_0..LABEL_2")
        )
    return tuple(label for label in ours if label is not None)


def scored(probabilities: Sequence[float], labels: Sequence[Label], scorer: str) -> Scored:
    """One text's class probabilities (in class-index order) as a `Scored`.

    Score = P(positive) - P(negative), in [-1, 1]; a neutral-heavy text sits near 0 however
    its remaining mass splits. Label = the most probable class.
    """
    if len(probabilities) != len(labels):
        raise ValueError(f"{len(probabilities)} probabilities for {len(labels)} labels")
    p = dict(zip(labels, (float(x) for x in probabilities), strict=True))
    best = max(range(len(labels)), key=lambda i: probabilities[i])
    return Scored(p["positive"] - p["negative"], labels[best], scorer)


def _refusal(id2label: Mapping[Any, str], why: str) -> str:
    found = ", ".join(f"{k}: {v!r}" for k, v in id2label.items()) or "none"
    return f"unknown sentiment labels {{{found}}}: {why}"
