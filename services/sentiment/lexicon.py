"""The lexicon scorer: VADER's MIT lexicon with a small finance overlay, fully offline.

The fallback when no model directory is configured (docs/decisions/0025). VADER
was built for social media: "shares" is +1.2 and "plunge" is absent, so stock
VADER reads "Tesla shares plunge after recall" as positive. `FINANCE` corrects
the words headlines about companies turn on; the overlay is ours, small and
tested, and every score says which scorer made it (`name`).
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from services.sentiment.scorer import Scored

# Valence on VADER's scale (about -4..4). Words VADER lacks or reads the social-media way.
FINANCE: dict[str, float] = {
    "shares": 0.0,
    "stock": 0.0,
    "plunge": -2.5,
    "plunges": -2.5,
    "plunged": -2.5,
    "tumble": -2.0,
    "tumbles": -2.0,
    "slump": -2.0,
    "slumps": -2.0,
    "sink": -1.5,
    "sinks": -1.5,
    "miss": -1.5,
    "misses": -1.5,
    "missed": -1.5,
    "downgrade": -2.0,
    "downgrades": -2.0,
    "downgraded": -2.0,
    "recall": -1.5,
    "lawsuit": -1.8,
    "probe": -1.2,
    "layoffs": -1.5,
    "bankruptcy": -3.0,
    "beat": 1.5,
    "beats": 1.5,
    "surge": 2.0,
    "surges": 2.0,
    "soar": 2.2,
    "soars": 2.2,
    "rally": 1.8,
    "rallies": 1.8,
    "upgrade": 2.0,
    "upgrades": 2.0,
    "upgraded": 2.0,
    "record": 1.0,
    "buyback": 1.2,
}


class LexiconScorer:
    """VADER's compound score with the finance overlay; labels beyond +/- `neutral_band`."""

    def __init__(self, *, neutral_band: float = 0.05) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyser: Any = SentimentIntensityAnalyzer()
        self._analyser.lexicon.update(FINANCE)
        self._band = neutral_band
        self.name = f"lexicon:vader-{version('vaderSentiment')}+finance"

    def score(self, texts: Sequence[str]) -> list[Scored]:
        out = []
        for text in texts:
            compound = float(self._analyser.polarity_scores(text)["compound"])
            label = "neutral"
            if compound > self._band:
                label = "positive"
            elif compound < -self._band:
                label = "negative"
            out.append(Scored(compound, label, self.name))
        return out
