"""The lexicon scorer on headlines: the finance overlay reads market words the market's way."""

from __future__ import annotations

import pytest

from services.sentiment.lexicon import LexiconScorer


@pytest.fixture(scope="module")
def scorer() -> LexiconScorer:
    return LexiconScorer()


@pytest.mark.parametrize(
    ("headline", "label"),
    [
        ("Tesla shares plunge after recall", "negative"),  # stock VADER: +0.30
        ("Company misses estimates, shares tumble", "negative"),
        ("Analyst downgrades Boeing on delivery delays", "negative"),
        ("Apple beats estimates as iPhone sales surge", "positive"),
        ("Microsoft shares soar to a record on cloud growth", "positive"),
        ("Exxon to hold annual meeting on Wednesday", "neutral"),
    ],
)
def test_market_words_read_the_markets_way(
    scorer: LexiconScorer, headline: str, label: str
) -> None:
    (scored,) = scorer.score([headline])
    assert scored.label == label, scored
    assert -1.0 <= scored.score <= 1.0


def test_every_score_names_its_scorer_and_keeps_order(scorer: LexiconScorer) -> None:
    texts = ["Shares surge", "Shares plunge", ""]
    scored = scorer.score(texts)
    assert [s.label for s in scored] == ["positive", "negative", "neutral"]
    assert {s.scorer for s in scored} == {scorer.name}
    assert scorer.name.startswith("lexicon:vader-3.3.2+finance")
    assert scorer.score([]) == []
