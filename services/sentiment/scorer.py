"""What every sentiment scorer is: texts in, one `Scored` per text out, named.

A scorer's `name` is stored beside every score it makes (`news_scores.scorer`),
so a reader always knows which model, or the lexicon, produced a number. Two
runtimes of one model (the transformers pipeline and its ONNX export, parity
checked) share the model's name: they give the same scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Label = Literal["positive", "negative", "neutral"]


@dataclass(frozen=True)
class Scored:
    """One text's sentiment: `score` in [-1, 1], `label` positive/negative/neutral."""

    score: float
    label: str
    scorer: str


class Scorer(Protocol):
    name: str

    def score(self, texts: Sequence[str]) -> list[Scored]:
        """One `Scored` per text, in order."""
        ...
