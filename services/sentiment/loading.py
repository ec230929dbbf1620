"""Which scorer a process gets from its settings, and why, without ever failing to give one.

News keeps being scored whatever is wrong with the model directory: a broken
model costs quality (the lexicon instead of FinBERT), not the news flow. So
`load_scorer` never raises. Every step down is said twice, in the same one
line: `LoadedScorer.note` (for the caller to show: the flow's summary, the
API) and a WARNING log. The scores themselves say it too: each carries its
scorer's `name`.

The ladder, for `SENTIMENT_RUNTIME=onnx` (the default):

1. no `SENTIMENT_MODEL_DIR`: the lexicon, and no note (nothing was asked for);
2. the export (once, cached under `MODEL_DIR/sentiment/`) and ONNX Runtime;
3. if the export or ONNX Runtime fails but the model loads: the transformers
   pipeline, noted;
4. if the model directory itself is unusable (missing, no config, bad weights,
   unknown labels): the lexicon, noted with the cause. No runtime can serve
   such a model, so the pipeline is not tried after ONNX for it.

`SENTIMENT_RUNTIME=transformers` skips step 2. torch and transformers are
imported only on the rungs that use them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.errors import ConfigurationError, describe_failure
from services.sentiment.lexicon import LexiconScorer
from services.sentiment.onnx_scorer import OnnxScorer, export_onnx
from services.sentiment.scorer import Scorer
from services.sentiment.transformer import PipelineScorer
from services.settings import SentimentRuntime, Settings

logger = logging.getLogger(__name__)

Runtime = Literal["onnx", "transformers", "lexicon"]


@dataclass(frozen=True)
class LoadedScorer:
    """The scorer to use, what runs it, and why it is not the one configured (if it is not)."""

    scorer: Scorer
    runtime: Runtime
    note: str | None = None  # one line, set when the configured model or runtime is not used


def load_scorer(settings: Settings) -> LoadedScorer:
    """The best scorer `settings` allow; the lexicon, with a note, when the model fails."""
    model_dir = settings.sentiment_model_dir
    if model_dir is None:
        return LoadedScorer(LexiconScorer(), "lexicon")
    try:
        if settings.sentiment_runtime is SentimentRuntime.ONNX:
            return _onnx_or_pipeline(model_dir, settings)
        pipeline = PipelineScorer(model_dir, settings.sentiment_batch)
        return _loaded(LoadedScorer(pipeline, "transformers"))
    except Exception as exc:  # the edge of the news flow: any model failure means the lexicon
        cause = str(exc) if isinstance(exc, ConfigurationError) else _cause(model_dir, exc)
        return _noted(LexiconScorer(), "lexicon", f"{cause}; scoring with the lexicon instead")


def _onnx_or_pipeline(model_dir: Path, settings: Settings) -> LoadedScorer:
    try:
        path = export_onnx(model_dir, settings.model_dir)
        scorer = OnnxScorer(model_dir, path, settings.sentiment_batch)
    except ConfigurationError:
        raise  # the model itself is unusable: the pipeline cannot serve it either
    except Exception as exc:  # torch's exporter and ONNX Runtime raise many types
        pipeline = PipelineScorer(model_dir, settings.sentiment_batch)
        note = (
            f"{_cause(model_dir, exc, 'ONNX export or runtime failed')}; "
            "scoring with the transformers pipeline instead"
        )
        return _noted(pipeline, "transformers", note)
    return _loaded(LoadedScorer(scorer, "onnx"))


def _cause(model_dir: Path, exc: BaseException, what: str = "does not load") -> str:
    text = describe_failure(exc)
    return text if str(model_dir) in text else f"sentiment model {model_dir}: {what}: {text}"


def _noted(scorer: Scorer, runtime: Runtime, note: str) -> LoadedScorer:
    logger.warning("sentiment.fallback: %s", note, extra={"runtime": runtime})
    return _loaded(LoadedScorer(scorer, runtime, note))


def _loaded(loaded: LoadedScorer) -> LoadedScorer:
    logger.info("sentiment.scorer", extra={"scorer": loaded.scorer.name, "runtime": loaded.runtime})
    return loaded
