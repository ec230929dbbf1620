"""The model scorers on a real (tiny, trained-here) BERT: the transformers pipeline, its ONNX
export (parity, cached once), the label map, and the fall back to the lexicon with a note.

One model is built per session (tests/sentiment_model.py, ~2 s) and exported once; the
fallback tests copy it and break the copy the way a user's directory breaks.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from models.errors import ConfigurationError
from services.sentiment.labels import label_map, scored
from services.sentiment.lexicon import LexiconScorer
from services.sentiment.loading import load_scorer
from services.sentiment.onnx_scorer import OnnxScorer, export_onnx
from services.sentiment.transformer import PipelineScorer, model_digest, model_name
from services.settings import SentimentRuntime, Settings
from tests.conftest import REPO
from tests.sentiment_model import build_tiny_classifier, labelled_headlines

POSITIVE = [
    "Initech shares soar after record earnings",
    "Hooli beats estimates and raises guidance",
    "Wayne stock surges on analyst upgrade",
]
NEGATIVE = [
    "Globex plunges on lawsuit",
    "Stark shares tumble after earnings miss",
    "Oscorp files for bankruptcy protection",
]
NEUTRAL = [
    "Acme to hold annual meeting",
    "Tyrell names new board member",
    "Wonka schedules quarterly earnings call",
]


@pytest.fixture(scope="session")
def models_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `MODEL_DIR` holding the tiny model's checked export (exported once per session)."""
    out = tmp_path_factory.mktemp("models")
    export_onnx(tiny_model, out)
    return out


@pytest.fixture(scope="session")
def pipeline(tiny_model: Path) -> PipelineScorer:
    return PipelineScorer(tiny_model, batch_size=8)


@pytest.fixture(scope="session")
def onnx(tiny_model: Path, models_dir: Path) -> OnnxScorer:
    return OnnxScorer(tiny_model, export_onnx(tiny_model, models_dir), batch_size=8)


def many_headlines() -> list[str]:
    """Three dozen texts of many lengths: unseen company pairings, off-template texts, one
    past the model's 64 tokens, one empty."""
    texts, _ = labelled_headlines(random.Random(7), per_template=2)
    return [
        *texts[::2],
        *texts[1::6],
        "Fed holds rates steady as inflation cools",
        "oil",
        "Analysts expect results in line with estimates; shares little changed in early trade",
        " ".join(["stock rallies on strong demand"] * 30),
        "",
    ]


# -- the pipeline ---------------------------------------------------------------------


def test_the_pipeline_labels_clear_headlines_and_the_score_sign_follows(
    pipeline: PipelineScorer,
) -> None:
    results = pipeline.score(POSITIVE + NEGATIVE + NEUTRAL)
    labels = [r.label for r in results]
    assert labels == ["positive"] * 3 + ["negative"] * 3 + ["neutral"] * 3, results
    assert all(r.score > 0.5 for r in results[:3])
    assert all(r.score < -0.5 for r in results[3:6])
    assert all(abs(r.score) < 0.5 for r in results[6:])
    assert {r.scorer for r in results} == {pipeline.name}
    assert pipeline.score([]) == []


def test_batched_scores_equal_one_by_one_scores(pipeline: PipelineScorer, onnx: OnnxScorer) -> None:
    texts = many_headlines()
    for scorer in (pipeline, onnx):
        together = scorer.score(texts)  # batches of 8, padded to each batch's longest text
        alone = [scorer.score([t])[0] for t in texts]
        assert [r.label for r in together] == [r.label for r in alone]
        assert max(abs(a.score - b.score) for a, b in zip(together, alone, strict=True)) < 1e-6


def test_the_name_is_the_directory_and_a_hash_of_config_and_weights(
    tiny_model: Path, tmp_path: Path, pipeline: PipelineScorer
) -> None:
    assert pipeline.name == f"tiny-finbert@{model_digest(tiny_model)[:8]}"
    copy = shutil.copytree(tiny_model, tmp_path / "tiny-finbert")
    assert model_name(copy) == pipeline.name  # the content, not the location
    (copy / "model.safetensors").write_bytes((copy / "model.safetensors").read_bytes() + b" ")
    assert model_name(copy) != pipeline.name


# -- ONNX -----------------------------------------------------------------------------


def test_onnx_scores_match_the_pipeline_within_1e_5_under_the_same_name(
    pipeline: PipelineScorer, onnx: OnnxScorer
) -> None:
    texts = many_headlines()
    assert len(texts) >= 36
    want, got = pipeline.score(texts), onnx.score(texts)
    assert max(abs(a.score - b.score) for a, b in zip(want, got, strict=True)) <= 1e-5
    assert [r.label for r in got] == [r.label for r in want]
    assert onnx.name == pipeline.name
    assert {r.scorer for r in got} == {pipeline.name}


def test_the_export_is_written_once_and_reused(tiny_model: Path, models_dir: Path) -> None:
    path = models_dir / "sentiment" / f"{model_digest(tiny_model)}.onnx"
    before = path.stat()
    assert export_onnx(tiny_model, models_dir) == path
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no partial files


# -- labels ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "Neutral", 1: "Positive", 2: "Negative"}, ("neutral", "positive", "negative")),
        ({"0": "positive", "1": "negative", "2": "neutral"}, ("positive", "negative", "neutral")),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, ("neutral", "positive", "negative")),
        ({"0": "label_0", "1": "label_1", "2": "label_2"}, ("neutral", "positive", "negative")),
        ({0: "NEG", 1: "neu", 2: "Pos"}, ("negative", "neutral", "positive")),
    ],
)
def test_the_label_map_reads_the_config(
    id2label: dict[int | str, str], expected: tuple[str, ...]
) -> None:
    assert label_map(id2label) == expected


@pytest.mark.parametrize(
    "id2label",
    [
        {0: "bullish", 1: "bearish", 2: "neutral"},
        {0: "positive", 1: "negative"},
        {0: "positive", 1: "positive", 2: "negative"},
        {0: "LABEL_0", 1: "LABEL_1"},
    ],
)
def test_labels_that_are_not_ours_are_refused_by_name(id2label: dict[int | str, str]) -> None:
    with pytest.raises(ConfigurationError, match="unknown sentiment labels") as raised:
        label_map(id2label)
    assert all(repr(name) in str(raised.value) for name in id2label.values())


def test_score_is_p_positive_minus_p_negative_and_label_the_likeliest() -> None:
    result = scored([0.5, 0.3, 0.2], ("neutral", "positive", "negative"), "m@1")
    assert result.label == "neutral"
    assert result.score == pytest.approx(0.1)
    assert result.scorer == "m@1"


def test_a_model_with_label_n_names_is_read_in_finbert_tones_order(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    generic = build_tiny_classifier(tmp_path_factory.mktemp("generic") / "m", labels="generic")
    assert json.loads((generic / "config.json").read_text())["id2label"]["1"] == "LABEL_1"
    results = PipelineScorer(generic).score([POSITIVE[0], NEGATIVE[0], NEUTRAL[0]])
    assert [r.label for r in results] == ["positive", "negative", "neutral"]


# -- loading and fallback -------------------------------------------------------------


def settings_for(model_dir: Path | None, runtime: SentimentRuntime, models_dir: Path) -> Settings:
    return Settings(
        sentiment_model_dir=model_dir,
        sentiment_runtime=runtime,
        sentiment_batch=4,
        model_dir=models_dir,
    )


def test_no_model_dir_means_the_lexicon_without_a_note(tmp_path: Path) -> None:
    loaded = load_scorer(settings_for(None, SentimentRuntime.ONNX, tmp_path))
    assert isinstance(loaded.scorer, LexiconScorer)
    assert (loaded.runtime, loaded.note) == ("lexicon", None)


def test_the_onnx_runtime_serves_the_cached_export(tiny_model: Path, models_dir: Path) -> None:
    loaded = load_scorer(settings_for(tiny_model, SentimentRuntime.ONNX, models_dir))
    assert isinstance(loaded.scorer, OnnxScorer)
    assert (loaded.runtime, loaded.note) == ("onnx", None)
    assert loaded.scorer.score(POSITIVE[:1])[0].label == "positive"


def test_the_transformers_runtime_serves_the_pipeline(tiny_model: Path, tmp_path: Path) -> None:
    loaded = load_scorer(settings_for(tiny_model, SentimentRuntime.TRANSFORMERS, tmp_path))
    assert isinstance(loaded.scorer, PipelineScorer)
    assert (loaded.runtime, loaded.note) == ("transformers", None)
    assert not (tmp_path / "sentiment").exists()  # nothing exported


def test_a_missing_model_dir_falls_back_to_the_lexicon_with_a_note_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "finbert-tone"
    caplog.set_level(logging.WARNING, logger="services.sentiment.loading")
    for runtime in SentimentRuntime:
        loaded = load_scorer(settings_for(missing, runtime, tmp_path))
        assert isinstance(loaded.scorer, LexiconScorer)
        assert loaded.runtime == "lexicon"
        assert loaded.note is not None
        assert str(missing) in loaded.note
        assert "no such directory" in loaded.note
        assert "\n" not in loaded.note
    assert [r.getMessage() for r in caplog.records] == [f"sentiment.fallback: {loaded.note}"] * len(
        SentimentRuntime
    )


def test_a_file_given_as_the_model_dir_is_named_as_not_a_directory(tmp_path: Path) -> None:
    file = tmp_path / "model.bin"
    file.write_bytes(b"\0")
    loaded = load_scorer(settings_for(file, SentimentRuntime.ONNX, tmp_path))
    assert loaded.runtime == "lexicon"
    assert loaded.note == (
        f"sentiment model {file}: not a directory; scoring with the lexicon instead"
    )


@pytest.mark.parametrize(
    ("breakage", "cause"),
    [
        ("garbage config", "config.json does not parse"),
        ("no config", "no config.json"),
        ("no weights", "no weights"),
        ("garbage weights", "the weights do not load"),
        ("unknown labels", "unknown sentiment labels"),
        ("base model weights", "the weights lack classifier"),
    ],
)
@pytest.mark.parametrize("runtime", list(SentimentRuntime))
def test_a_broken_model_dir_falls_back_to_the_lexicon_with_the_cause(
    tiny_model: Path, tmp_path: Path, breakage: str, cause: str, runtime: SentimentRuntime
) -> None:
    broken = _break(shutil.copytree(tiny_model, tmp_path / "broken"), breakage)
    loaded = load_scorer(settings_for(broken, runtime, tmp_path / "models"))
    assert isinstance(loaded.scorer, LexiconScorer)
    assert loaded.runtime == "lexicon"
    assert loaded.note is not None
    assert loaded.note.startswith(f"sentiment model {broken}: ")
    assert cause in loaded.note
    assert loaded.note.endswith("; scoring with the lexicon instead")
    assert not list((tmp_path / "models").rglob("*.onnx"))  # nothing half-exported left


def test_an_unloadable_onnx_file_falls_back_to_the_pipeline_with_a_note(
    tiny_model: Path, tmp_path: Path
) -> None:
    cached = tmp_path / "sentiment" / f"{model_digest(tiny_model)}.onnx"
    cached.parent.mkdir()
    cached.write_bytes(b"not an onnx file")  # a truncated copy, a disk error
    loaded = load_scorer(settings_for(tiny_model, SentimentRuntime.ONNX, tmp_path))
    assert isinstance(loaded.scorer, PipelineScorer)
    assert loaded.runtime == "transformers"
    assert loaded.note is not None
    assert loaded.note.startswith(f"sentiment model {tiny_model}: ONNX export or runtime failed")
    assert loaded.note.endswith("; scoring with the transformers pipeline instead")
    assert loaded.scorer.score(NEGATIVE[:1])[0].label == "negative"


def test_an_export_that_cannot_be_written_falls_back_to_the_pipeline(
    tiny_model: Path, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    models.write_text("a file where MODEL_DIR should be")
    loaded = load_scorer(settings_for(tiny_model, SentimentRuntime.ONNX, models))
    assert loaded.runtime == "transformers"
    assert loaded.note is not None
    assert "ONNX export or runtime failed" in loaded.note


def test_the_sentiment_modules_import_without_torch_or_transformers() -> None:
    code = (
        "import sys\n"
        "import services.sentiment.loading\n"
        "assert not {'torch', 'transformers', 'onnxruntime'} & set(sys.modules), sorted(\n"
        "    m for m in sys.modules if m.split('.')[0] in {'torch', 'transformers'})\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def _break(model_dir: Path, breakage: str) -> Path:
    config = model_dir / "config.json"
    weights = model_dir / "model.safetensors"
    if breakage == "garbage config":
        config.write_text("{not json")
    elif breakage == "no config":
        config.unlink()
    elif breakage == "no weights":
        weights.unlink()
    elif breakage == "garbage weights":
        weights.write_bytes(b"\x00\x01 not safetensors")
    elif breakage == "unknown labels":
        data = json.loads(config.read_text())
        data["id2label"] = {"0": "bullish", "1": "bearish", "2": "flat"}
        data["label2id"] = {"bullish": 0, "bearish": 1, "flat": 2}
        config.write_text(json.dumps(data))
    elif breakage == "base model weights":  # a BERT without its classification head
        from safetensors.torch import load_file, save_file

        tensors = load_file(weights)
        save_file({k: v for k, v in tensors.items() if not k.startswith("classifier")}, weights)
    return model_dir


def test_texts_are_scored_in_length_order_and_answered_in_the_given_order() -> None:
    from services.sentiment.scorer import Scored, in_length_order

    seen: list[list[str]] = []

    def by_length(texts: list[str]) -> list[Scored]:
        seen.append(texts)
        return [Scored(float(len(t)), "neutral", "len") for t in texts]

    texts = ["a much longer headline", "short", "", "middling one"]
    got = in_length_order(texts, by_length)
    assert seen == [["", "short", "middling one", "a much longer headline"]]
    assert [g.score for g in got] == [22.0, 5.0, 0.0, 12.0]
