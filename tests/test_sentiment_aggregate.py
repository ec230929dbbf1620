"""A symbol's sentiment from its scored items: the decay, the window, dispersion and change."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from models.sentiment import SentimentParams
from services.sentiment.aggregate import Known, symbol_sentiment

T = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
P = SentimentParams(half_life_h=24, window_h=72, change_h=24)


def _at(hours_before: float, score: float) -> Known:
    return Known(T - timedelta(hours=hours_before), score)


def test_a_day_old_item_weighs_half_as_much_as_a_fresh_one() -> None:
    got = symbol_sentiment("AAPL", [_at(0, 1.0), _at(24, -1.0)], T, P, "lexicon")
    # weights 1 and 0.5: (1 - 0.5) / 1.5
    assert got.score == pytest.approx(1 / 3, abs=1e-6)
    assert got.count == 2
    assert got.first_known_at == T - timedelta(hours=24)
    assert got.last_known_at == T
    mean = 1 / 3
    spread = (1.0 * (1 - mean) ** 2 + 0.5 * (-1 - mean) ** 2) / 1.5
    assert got.dispersion == pytest.approx(math.sqrt(spread), abs=1e-6)
    assert got.scorer == "lexicon"


def test_items_after_as_of_or_before_the_window_do_not_count() -> None:
    inside = _at(1, 0.5)
    later = Known(T + timedelta(seconds=1), -1.0)
    too_old = _at(72, -1.0)  # exactly the window's length before: out (the window is open there)
    got = symbol_sentiment("AAPL", [later, too_old, inside], T, P, "lexicon")
    assert (got.score, got.count, got.dispersion) == (0.5, 1, 0.0)


def test_change_is_against_the_sentiment_change_h_before() -> None:
    items = [_at(30, -0.5), _at(2, 0.5)]
    got = symbol_sentiment("AAPL", items, T, P, "lexicon")
    before = symbol_sentiment("AAPL", items, T - timedelta(hours=24), P, "lexicon")
    assert before.score == -0.5  # only the older item was known then
    assert got.change == pytest.approx(got.score - before.score, abs=1e-6)  # type: ignore[operator]
    assert got.change is not None
    assert got.change > 0


def test_no_items_means_no_figures_not_zero() -> None:
    got = symbol_sentiment("AAPL", [], T, P, "lexicon")
    assert (got.score, got.count, got.dispersion, got.change, got.scorer) == (
        None,
        0,
        None,
        None,
        None,
    )
    first = symbol_sentiment("AAPL", [_at(1, 0.2)], T, P, "lexicon")
    assert first.change is None  # nothing known a day before: no change to speak of


def test_the_same_items_in_any_order_give_the_same_figures() -> None:
    items = [_at(h, s) for h, s in [(1, 0.3), (5, -0.2), (40, 0.9), (60, -0.7)]]
    forward = symbol_sentiment("MSFT", items, T, P, "x")
    backward = symbol_sentiment("MSFT", items[::-1], T, P, "x")
    assert forward == backward
