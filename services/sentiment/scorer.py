"""What every sentiment scorer is: texts in, one `Scored` per text out, named.

A scorer's `name` is stored beside every score it makes (`news_scores.scorer`),
so a reader always knows which model, or the lexicon, produced a number. Two
runtimes of one model (the transformers pipeline and its ONNX export, parity
checked) share the model's name: they give the same scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def in_length_order(
    texts: Sequence[str], score: Callable[[list[str]], list[Scored]]
) -> list[Scored]:
    """`score` applied to `texts` sorted by length, the answers put back in the given order.

    A batch is padded to its longest text; headlines vary from 3 to 40 tokens, so batching
    them as they come pads most of the work away (bench/sentiment.py measured batch 256
    slower than 32). Sorted, each batch holds texts of about one length.
    """
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    answers = score([texts[i] for i in order])
    out: list[Scored | None] = [None] * len(texts)
    for i, answer in zip(order, answers, strict=True):
        out[i] = answer
    return [a for a in out if a is not None]
