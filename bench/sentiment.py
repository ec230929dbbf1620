"""Headline scoring throughput: the transformers pipeline against ONNX Runtime, in one run.

    .venv/bin/python bench/sentiment.py                            # the tiny model, 1/32/256
    .venv/bin/python bench/sentiment.py --shape bert-base --texts 256 --rounds 3
    .venv/bin/python bench/sentiment.py --model-dir ~/models/finbert-tone --texts 256
    .venv/bin/python bench/sentiment.py --quick                    # smoke run

The model, by default, is the tests' tiny BERT (tests/sentiment_model.py: one
layer, hidden size 16, ~8k parameters, trained here in a second): the numbers
say what the runtimes cost around a model (tokenizing, batching, dispatch),
not what FinBERT costs. `--shape bert-base` builds a classifier of FinBERT-tone's
shape (BERT-base: 12 layers, hidden 768, FinVocab's 30,873 entries, ~110M
parameters) with seeded random weights, untrained, which changes nothing about
speed; nothing is downloaded. `--model-dir` takes any local directory
`SENTIMENT_MODEL_DIR` accepts, a real FinBERT-tone included.

Both runtimes are the scorers the news flow uses (`PipelineScorer`,
`OnnxScorer` on the file `export_onnx` writes, parity checked), scoring the
same `--texts` headlines (templated headlines with random companies, a few
longer texts) per call, at each `--batch` size, with `--threads` threads each
(torch's intra-op threads, ONNX Runtime's intra-op threads; default 1, the
setting the project runs ONNX Runtime with). The lexicon (no batching) is
timed on the same headlines for reference.

Every row is warmed, then timed for `--rounds` rounds; rounds interleave the
rows (rotating the order) so a noisy spell hits all of them, and the table
gives the median headlines/s. "vs pipeline" is the ratio to the pipeline at
the same batch size; "max abs diff" compares each row's scores with the
pipeline's on the same headlines.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `tests` (the tiny model's builder) is not an installed package

import onnxruntime  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from services.sentiment.lexicon import LexiconScorer  # noqa: E402
from services.sentiment.onnx_scorer import OnnxScorer, export_onnx  # noqa: E402
from services.sentiment.scorer import Scorer  # noqa: E402
from services.sentiment.transformer import PipelineScorer, load_model  # noqa: E402
from tests.sentiment_model import build_tiny_classifier, labelled_headlines  # noqa: E402

BATCHES = (1, 32, 256)
SHAPES = {
    "tiny": "the tests' tiny BERT, trained",
    "bert-base": "FinBERT-tone's shape (BERT-base), random weights",
}
EXTRA = (
    "Fed holds rates steady as inflation cools and markets wait for guidance",
    "Oil slides as supply fears ease",
    "Analysts expect quarterly results in line with estimates; shares little changed in early "
    "trade after a week of gains across the sector",
)


@dataclass
class Row:
    """One scorer at one batch size; `per_s` has one headlines/s figure per round."""

    batch: int
    runtime: str
    scorer: Scorer
    diff: float | None = None  # max |score - pipeline's score|, None for the pipeline itself
    per_s: list[float] = field(default_factory=list)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, help="a local model directory")
    parser.add_argument(
        "--shape", choices=("tiny", "bert-base"), default="tiny", help="the model built here"
    )
    parser.add_argument("--texts", type=int, default=1024, help="headlines per timed call")
    parser.add_argument("--batch", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="at most 128 headlines, 2 rounds")
    args = parser.parse_args(argv)
    texts_n, rounds = (min(args.texts, 128), 2) if args.quick else (args.texts, args.rounds)

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    torch.set_num_threads(args.threads)
    texts = make_headlines(texts_n, args.seed)
    with tempfile.TemporaryDirectory(prefix="aitrader-sentiment-bench-") as tmp:
        model_dir = args.model_dir or build_model(Path(tmp), args.shape, args.seed)
        started = time.perf_counter()
        onnx_path = export_onnx(model_dir, Path(tmp) / "models")
        export_s = time.perf_counter() - started
        rows = build_rows(model_dir, onnx_path, args.batch, args.threads)
        measure(rows, texts, rounds)
        params = sum(p.numel() for p in load_model(model_dir).parameters())

    print(
        f"{_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"onnxruntime {onnxruntime.__version__}"
    )
    what = str(args.model_dir) if args.model_dir else SHAPES[args.shape]
    print(
        f"model: {what} ({params:,} parameters); export + parity check {export_s:.1f} s; "
        f"{len(texts)} headlines per call, {args.threads} thread(s), "
        f"{rounds} rounds, medians over rounds"
    )
    print()
    print_table(rows, len(texts))


def build_model(tmp: Path, shape: str, seed: int) -> Path:
    """The tiny trained classifier, or one of BERT-base's shape with random weights that
    reuses its tokenizer (FinBERT's vocabulary size, so the embedding is FinBERT's size)."""
    tiny = build_tiny_classifier(tmp / "tiny-finbert")
    if shape == "tiny":
        return tiny
    model_dir = tmp / "bert-base-shaped"
    shutil.copytree(tiny, model_dir)
    for weights in model_dir.glob("*.safetensors"):
        weights.unlink()
    config = BertConfig(
        vocab_size=30_873,
        id2label={0: "Neutral", 1: "Positive", 2: "Negative"},
        label2id={"Neutral": 0, "Positive": 1, "Negative": 2},
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        BertForSequenceClassification(config).save_pretrained(model_dir)
    return model_dir


def make_headlines(n: int, seed: int) -> list[str]:
    """`n` headlines: the templates with random companies, and a few longer texts."""
    rng = random.Random(seed)
    pool, _ = labelled_headlines(rng, per_template=max(1, n // 24 + 1))
    rng.shuffle(pool)
    return [*EXTRA, *pool][:n]  # the pool has more than n


def build_rows(model_dir: Path, onnx_path: Path, batches: list[int], threads: int) -> list[Row]:
    lexicon = LexiconScorer()
    rows: list[Row] = []
    for batch in batches:
        rows.append(Row(batch, "transformers pipeline", PipelineScorer(model_dir, batch)))
        onnx = OnnxScorer(model_dir, onnx_path, batch, threads=threads)
        rows.append(Row(batch, "onnxruntime", onnx))
    rows.append(Row(0, "lexicon (VADER + finance)", lexicon))
    return rows


def measure(rows: list[Row], texts: list[str], rounds: int) -> None:
    """Warm every row and record its diff against the pipeline, then time the rounds."""
    reference: dict[int, list[float]] = {}
    for row in rows:
        scores = [s.score for s in row.scorer.score(texts)]
        if isinstance(row.scorer, PipelineScorer):
            reference[row.batch] = scores
        elif row.batch in reference:
            row.diff = max(abs(a - b) for a, b in zip(scores, reference[row.batch], strict=True))
    for r in range(rounds):
        for row in rows[r % len(rows) :] + rows[: r % len(rows)]:
            started = time.perf_counter()
            row.scorer.score(texts)
            row.per_s.append(len(texts) / (time.perf_counter() - started))


def print_table(rows: list[Row], texts: int) -> None:
    print("| batch | runtime | headlines/s | ms per batch | vs pipeline | max abs diff |")
    print("|---:|---|---:|---:|---:|---:|")
    pipeline: dict[int, float] = {}
    for row in rows:
        per_s = statistics.median(row.per_s)
        if isinstance(row.scorer, PipelineScorer):
            pipeline[row.batch] = per_s
        batch = str(row.batch) if row.batch else "-"
        calls = -(-texts // row.batch) if row.batch else 0  # forward passes per call
        per_batch = f"{1e3 * texts / per_s / calls:,.2f}" if calls else "-"
        ratio = (
            f"{per_s / pipeline[row.batch]:.2f}x"
            if row.batch in pipeline
            else f"{per_s / max(pipeline.values()):.2f}x the best"
        )
        diff = "-" if row.diff is None else f"{row.diff:.1e}"
        print(f"| {batch} | {row.runtime} | {per_s:,.0f} | {per_batch} | {ratio} | {diff} |")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if sys.platform == "linux" else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


if __name__ == "__main__":
    main()
