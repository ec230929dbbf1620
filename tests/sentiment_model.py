"""A tiny BERT headline classifier trained in the test, so the transformer and ONNX scorers
run on a real model with no download and no hub.

`build_tiny_classifier` writes its own vocabulary, trains a one-layer BERT (hidden size 16,
~8k parameters) for a few hundred seeded CPU steps on templated headlines, and saves the
model and tokenizer as `save_pretrained` does for FinBERT-tone: the same files the scorers
meet in a user's model directory. It classifies clear headlines ("X shares soar after record
earnings", "X plunges on lawsuit", "X to hold annual meeting") right; it knows nothing else.

Tests share one build per session: the fixture in tests/test_sentiment_scorers.py calls this
once into a directory from `tmp_path_factory`. bench/sentiment.py builds the same model.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

LabelSet = Literal["finbert", "generic"]

# FinBERT-tone's order (docs/decisions/0025): 0 neutral, 1 positive, 2 negative.
NEUTRAL, POSITIVE, NEGATIVE = 0, 1, 2
ID2LABEL: dict[LabelSet, dict[int, str]] = {
    "finbert": {NEUTRAL: "Neutral", POSITIVE: "Positive", NEGATIVE: "Negative"},
    "generic": {i: f"LABEL_{i}" for i in (NEUTRAL, POSITIVE, NEGATIVE)},  # transformers' default
}

COMPANIES = (  # noqa: SIM905 - word lists read better as words
    "acme globex initech umbrella hooli soylent cyberdyne tyrell wonka stark wayne oscorp "
    "massive dynamic aperture vandelay pied piper gringotts monarch nakatomi"
).split()

TEMPLATES: dict[int, tuple[str, ...]] = {
    POSITIVE: (
        "{c} shares soar after record earnings",
        "{c} beats estimates and raises guidance",
        "{c} stock surges on analyst upgrade",
        "{c} rallies as profit jumps",
        "{c} posts record revenue and strong growth",
        "{c} shares jump after upbeat outlook",
        "{c} wins major contract and stock climbs",
        "{c} announces buyback as sales boom",
    ),
    NEGATIVE: (
        "{c} plunges on lawsuit",
        "{c} shares tumble after earnings miss",
        "{c} cuts guidance as sales slump",
        "{c} faces probe over accounting fraud",
        "{c} downgraded as losses widen",
        "{c} stock sinks after product recall",
        "{c} announces layoffs amid weak demand",
        "{c} files for bankruptcy protection",
    ),
    NEUTRAL: (
        "{c} to hold annual meeting",
        "{c} schedules quarterly earnings call",
        "{c} names new board member",
        "{c} to present at industry conference",
        "{c} files quarterly report",
        "{c} opens new office in london",
        "{c} announces date of shareholder meeting",
        "{c} appoints chief financial officer",
    ),
}

# Words beyond the headlines, so the vocabulary looks like a small real one and texts in the
# tests and the bench are not all [UNK].
EXTRA_WORDS = (  # noqa: SIM905
    "the a an and or of in on at to for from by with as is are was were be been it its this "
    "that these those after before over under amid into out up down new old big small high "
    "low first last next year quarter month week day today market markets stock stocks share "
    "shares price prices investor investors analyst analysts bank banks fund funds bond bonds "
    "rate rates inflation fed central economy growth recession jobs unemployment oil gas gold "
    "dollar euro yen trade tariff tariffs deal deals merger acquisition takeover bid offer "
    "sale sales revenue revenues profit profits loss losses margin margins debt cash dividend "
    "dividends buyback split ipo listing exchange nasdaq index futures options volatility "
    "rally rallies surge surges soar soars jump jumps climb climbs gain gains rise rises "
    "plunge plunges tumble tumbles fall falls drop drops slide slides sink sinks slump slumps "
    "beat beats miss misses raise raises cut cuts upgrade upgrades downgrade downgrades "
    "strong weak record upbeat gloomy outlook forecast guidance estimate estimates results "
    "earnings report reports quarterly annual meeting call board member chief executive "
    "officer financial ceo cfo appoints names hires resigns steps leaves lawsuit probe fraud "
    "recall fine penalty settlement bankruptcy protection layoffs demand supply chain "
    "product products launch launches contract contracts wins major deal approval regulator "
    "regulators sec court judge ruling patent patents china europe london york tokyo "
    "conference industry present presents opens office schedules date shareholder "
    "shareholders holds hold will would could may might says said expects expected "
    "unexpectedly sharply slightly more less than about around nearly million billion "
    "percent points boom booms widen widens narrow narrows accounting"
).split()

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_POSITIONS = 64


def build_tiny_classifier(
    path: Path, *, labels: LabelSet = "finbert", seed: int = 0, steps: int = 300
) -> Path:
    """Train and save the tiny classifier in `path` (created); returns `path`.

    `labels="finbert"` names the labels as FinBERT-tone does (Neutral, Positive, Negative);
    `"generic"` leaves the config's default LABEL_0..LABEL_2, as copies older than May 2022
    have, in the same order. Raises if training leaves the model wrong on more than a tenth
    of its own headlines, so a test never runs on a model that learnt nothing.
    """
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    vocab.write_text("\n".join(_vocabulary()) + "\n")
    # From the directory, not `BertTokenizerFast(vocab_file=...)`: transformers 5 ignores that
    # keyword (its tokenizers take `vocab=`) and every word would be [UNK]. In transformers 5
    # `BertTokenizer` is the fast (tokenizers) one and `BertTokenizerFast` an untyped alias.
    tokenizer = BertTokenizer.from_pretrained(
        str(path), model_max_length=MAX_POSITIONS, local_files_only=True
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=MAX_POSITIONS,
        id2label=ID2LABEL[labels],  # three labels: num_labels=3
        label2id={name: i for i, name in ID2LABEL[labels].items()},
        initializer_range=0.1,  # BERT's 0.02 leaves a 16-wide model stuck for many steps
    )
    texts, targets = labelled_headlines(random.Random(seed), per_template=12)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 16-wide model gains nothing from more; on a busy box it loses
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = BertForSequenceClassification(config)
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            y = torch.tensor(targets)
            _train(model, batch, y, steps=steps, seed=seed)
    finally:
        torch.set_num_threads(threads)
    model.train(False)
    with torch.no_grad():
        right = (model(**batch).logits.argmax(-1) == y).float().mean().item()
    if right < 0.9:
        raise AssertionError(f"tiny classifier got only {right:.0%} of its training set right")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def labelled_headlines(rng: random.Random, *, per_template: int) -> tuple[list[str], list[int]]:
    """Each template filled with `per_template` random company names; (texts, label ids)."""
    texts, targets = [], []
    for label, templates in TEMPLATES.items():
        for template in templates:
            for _ in range(per_template):
                texts.append(template.format(c=rng.choice(COMPANIES).title()))
                targets.append(label)
    return texts, targets


def _train(model: object, batch: object, y: object, *, steps: int, seed: int) -> None:
    import torch

    assert isinstance(model, torch.nn.Module)
    assert isinstance(y, torch.Tensor)
    inputs = dict(batch)  # type: ignore[call-overload]
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        pick = torch.randint(0, len(y), (32,), generator=generator)
        loss = model(**{k: v[pick] for k, v in inputs.items()}, labels=y[pick]).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def _vocabulary() -> list[str]:
    words = set(EXTRA_WORDS) | set(COMPANIES)
    for templates in TEMPLATES.values():
        for template in templates:
            words.update(template.format(c="").split())
    return [*SPECIAL_TOKENS, *sorted(words)]
