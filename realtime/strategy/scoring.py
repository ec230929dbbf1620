"""How one suggestion is scored: each input mapped to [-1, 1], weighted, summed.

The inputs, each a view on the same symbol at the same moment:

* **signal**: the pattern's side (+1 buy, -1 sell) times its strength,
  `tanh(|score| / scale)` with a scale per kind (a z-score of 3, a breakout of
  20 bp beyond its level, volume 5x its mean are "strong"): kinds speak in
  different units and this puts them on one.
* **forecaster**: the forecast return over the horizon in units of the
  window's own volatility over that horizon (a z), through tanh.
* **pattern_classifier**: P(up) - P(down).
* **sentiment**: the symbol's latest score, already in [-1, 1].

An input that is absent (no model active, models paused, no sentiment) is
left out and the weights of the others are rescaled to sum to 1, so a score
means the same scale whatever was present; the suggestion's `degraded` says
what was missing. Each contribution is weight x value after that rescaling,
so the contributions sum to the score. A direction is called only beyond
`hold_band`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.enums import Side
from realtime.patterns.config import SignalKind

INPUTS = ("signal", "forecaster", "pattern_classifier", "sentiment")

SIGNAL_SCALE: dict[SignalKind, float] = {
    SignalKind.ZSCORE_BREAKOUT: 3.0,  # z
    SignalKind.HIGH_BREAKOUT: 20.0,  # basis points beyond the level
    SignalKind.LOW_BREAKOUT: 20.0,
    SignalKind.EMA_CROSS_UP: 10.0,  # bp between the averages
    SignalKind.EMA_CROSS_DOWN: 10.0,
    SignalKind.VWAP_RECLAIM: 20.0,  # bp from VWAP
    SignalKind.VWAP_LOSS: 20.0,
    SignalKind.VOLUME_SPIKE: 5.0,  # multiple of the mean size
}


_KINDS = frozenset(k.value for k in SignalKind)


@dataclass(frozen=True)
class Weights:
    signal: float = 0.4
    forecaster: float = 0.25
    pattern_classifier: float = 0.25
    sentiment: float = 0.1
    hold_band: float = 0.1  # |score| at or below: hold

    def __post_init__(self) -> None:
        values = [getattr(self, name) for name in INPUTS]
        if any(not math.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0: {values}")
        if not 0 <= self.hold_band < 1:
            raise ValueError(f"hold_band must be in [0, 1), got {self.hold_band}")


@dataclass(frozen=True)
class Scored:
    direction: str  # buy | sell | hold
    score: float
    confidence: float
    contributions: dict[str, float | None] = field(default_factory=dict)


def signal_value(kind: str, side: str, score: float) -> float:
    """The pattern's vote in [-1, 1]."""
    scale = SIGNAL_SCALE.get(SignalKind(kind), 1.0) if kind in _KINDS else 1.0
    strength = math.tanh(abs(score) / scale) if math.isfinite(score) else 0.0
    return strength if side == Side.BUY else -strength


def forecast_value(forecast_sum: float, window_sigma: float, horizon: int) -> float:
    """The forecaster's vote: its horizon return as a z of the window's volatility, squashed."""
    spread = max(window_sigma, 1e-6) * math.sqrt(max(horizon, 1))
    return math.tanh(forecast_sum / spread)


def classifier_value(p_down: float, p_up: float) -> float:
    return max(-1.0, min(1.0, p_up - p_down))


def combine(values: Mapping[str, float | None], weights: Weights) -> Scored:
    """Weighted mean of the present inputs (values in [-1, 1]) and the direction it calls."""
    present = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    total = sum(getattr(weights, k) for k in present)
    contributions: dict[str, float | None] = {name: None for name in INPUTS}
    if total <= 0:
        return Scored("hold", 0.0, 0.0, contributions)
    for name, value in present.items():
        contributions[name] = getattr(weights, name) * max(-1.0, min(1.0, value)) / total
    score = sum(c for c in contributions.values() if c is not None)
    direction = "hold"
    if score > weights.hold_band:
        direction = "buy"
    elif score < -weights.hold_band:
        direction = "sell"
    return Scored(direction, score, abs(score), contributions)


def read_answer(
    name: str,
    version: int,
    window: int,
    horizon: int,
    scores: np.ndarray[Any, Any],
    ticks: np.ndarray[Any, Any],
) -> tuple[float, dict[str, Any]]:
    """One model's vote in [-1, 1] for one symbol, and what it said, for the record.

    `scores` is the model's row for the symbol; `ticks` its (price, size) window,
    whose last `window` prices give the volatility a forecast is measured in.
    """
    if name == "forecaster":
        prices = np.maximum(ticks[-window:, 0], 1e-12)
        returns = np.diff(np.log(prices))
        sigma = float(returns.std()) if returns.size > 1 else 0.0
        ahead = float(np.sum(scores))
        value = forecast_value(ahead, sigma, horizon)
        return value, {"version": version, "return": ahead, "value": value}
    p_down, p_flat, p_up = (float(x) for x in scores[:3])
    value = classifier_value(p_down, p_up)
    return value, {
        "version": version,
        "probs": {"down": p_down, "flat": p_flat, "up": p_up},
        "value": value,
    }
