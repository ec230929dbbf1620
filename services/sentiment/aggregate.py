"""A symbol's sentiment from its scored items, as of an instant: pure arithmetic, no clock.

For `as_of` T, with half-life h and window W, the items counted are those
known in (T - W, T]; item i, known at t_i with score s_i, weighs
w_i = 0.5 ** ((T - t_i) / h), so yesterday's headline counts half of today's
(h = 24 h) and last week's hardly at all.

* `score` = sum(w s) / sum(w), in [-1, 1];
* `dispersion` = the weighted standard deviation sqrt(sum(w (s - score)^2) / sum(w)):
  0 when the items agree, up to 1 when they split evenly at the extremes;
* `count`, `first_known_at`, `last_known_at`: how many items, from when to when;
* `change` = score(T) - score(T - change_h), the earlier one computed the same
  way from the items known by then (None if there were none).

An item known after T cannot reach any figure: that is the point-in-time rule
(tests/test_sentiment_point_in_time.py). Figures are rounded to 6 decimals so
that both databases, and a rerun, give the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from models.sentiment import SentimentParams, SymbolSentiment

PLACES = 6


class Known(NamedTuple):
    """One scored item of a symbol: when it was known, and its score."""

    known_at: datetime
    score: float


def symbol_sentiment(
    symbol: str,
    items: Sequence[Known],
    as_of: datetime,
    params: SentimentParams,
    scorer: str | None,
) -> SymbolSentiment:
    """`symbol`'s sentiment as of `as_of` from `items` (any order; later ones are ignored)."""
    now = _window(items, as_of, params)
    before = _window(items, as_of - timedelta(hours=params.change_h), params)
    score, dispersion = _weighted(now, as_of, params.half_life_h)
    earlier, _ = _weighted(before, as_of - timedelta(hours=params.change_h), params.half_life_h)
    change = None if score is None or earlier is None else _round(score - earlier)
    return SymbolSentiment(
        symbol=symbol,
        as_of=as_of,
        scorer=scorer if now else None,
        score=score,
        count=len(now),
        dispersion=dispersion,
        change=change,
        first_known_at=min(i.known_at for i in now) if now else None,
        last_known_at=max(i.known_at for i in now) if now else None,
        half_life_h=params.half_life_h,
        window_h=params.window_h,
    )


def _window(items: Sequence[Known], as_of: datetime, params: SentimentParams) -> list[Known]:
    start = as_of - timedelta(hours=params.window_h)
    return [i for i in items if start < i.known_at <= as_of]


def _weighted(
    items: Sequence[Known], as_of: datetime, half_life_h: float
) -> tuple[float | None, float | None]:
    if not items:
        return None, None
    weights = [0.5 ** ((as_of - i.known_at).total_seconds() / 3600 / half_life_h) for i in items]
    total = math.fsum(weights)
    mean = math.fsum(w * i.score for w, i in zip(weights, items, strict=True)) / total
    spread = math.fsum(w * (i.score - mean) ** 2 for w, i in zip(weights, items, strict=True))
    return _round(mean), _round(math.sqrt(spread / total))


def _round(value: float) -> float:
    return round(value, PLACES) + 0.0  # no negative zero
