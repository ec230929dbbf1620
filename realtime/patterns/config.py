"""What the pattern engine computes and when it speaks: spans, windows, thresholds, cooldown.

One validated `PatternConfig`, built from settings (`PATTERN_*`) or from the
`params` of a strategy row (`from_params`), then flattened into the parameter
vector the compiled kernels read (`to_vector`). The vector layout is private
to this package; `P_*` names its slots.

EMA seeding, stated because references disagree:
* `first` (default): the first price seeds every EMA, `ema_0 = p_0`, then
  `ema_t = ema_{t-1} + a (p_t - ema_{t-1})` with `a = 2 / (span + 1)`. This is
  pandas `ewm(span=..., adjust=False).mean()`.
* `sma`: the EMA is undefined (NaN) for the first `span - 1` prices and is
  seeded with their simple mean at the `span`-th; the same recursion follows.
  This is TA-Lib's `EMA` (its default, non-Metastock compatibility).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_EMAS = 8


class SignalKind(StrEnum):
    """What a pattern saw. The order is the kernels' integer code (`SignalCode`)."""

    ZSCORE_BREAKOUT = "zscore_breakout"
    HIGH_BREAKOUT = "high_breakout"
    LOW_BREAKOUT = "low_breakout"
    EMA_CROSS_UP = "ema_cross_up"
    EMA_CROSS_DOWN = "ema_cross_down"
    VWAP_RECLAIM = "vwap_reclaim"
    VWAP_LOSS = "vwap_loss"
    VOLUME_SPIKE = "volume_spike"


class SignalCode(IntEnum):
    ZSCORE_BREAKOUT = 0
    HIGH_BREAKOUT = 1
    LOW_BREAKOUT = 2
    EMA_CROSS_UP = 3
    EMA_CROSS_DOWN = 4
    VWAP_RECLAIM = 5
    VWAP_LOSS = 6
    VOLUME_SPIKE = 7


KIND_OF_CODE: tuple[SignalKind, ...] = tuple(SignalKind[code.name] for code in SignalCode)
N_KINDS = len(SignalCode)

# Slots of the float64 parameter vector the kernels read.
P_N_EMAS = 0
P_SEED_SMA = 1
P_Z_WINDOW = 2
P_BREAKOUT_WINDOW = 3
P_VOLUME_WINDOW = 4
P_RING = 5
P_Z_THRESHOLD = 6
P_VOLUME_RATIO = 7
P_FAST = 8  # index into the EMA spans
P_SLOW = 9
P_VWAP_MIN_TICKS = 10
P_ENABLED = 11  # bitmask of SignalCode values
P_COOLDOWN_NS = 13
P_SESSION_OFFSET_NS = 14
P_EMA_ALPHA = 16  # MAX_EMAS alphas
P_EMA_SPAN = P_EMA_ALPHA + MAX_EMAS  # MAX_EMAS spans
P_LEN = P_EMA_SPAN + MAX_EMAS


class PatternConfig(BaseModel):
    """The engine's parameters. Immutable: a new config means a new engine state."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ema_spans: tuple[int, ...] = Field(default=(8, 21, 55), min_length=2, max_length=MAX_EMAS)
    ema_seed: Literal["first", "sma"] = "first"
    cross_fast: int = 8
    cross_slow: int = 21
    zscore_window: int = Field(default=60, ge=3, le=10_000)
    zscore_threshold: float = Field(default=3.0, gt=0)
    breakout_window: int = Field(default=20, ge=2, le=10_000)
    volume_window: int = Field(default=60, ge=2, le=10_000)
    volume_spike_ratio: float = Field(default=4.0, gt=1)
    vwap_min_ticks: int = Field(default=10, ge=2)
    cooldown_s: float = Field(default=60.0, ge=0)
    session_utc_offset_minutes: int = Field(default=-300, ge=-24 * 60, le=24 * 60)
    enabled: frozenset[SignalKind] = frozenset(SignalKind)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if any(span < 1 for span in self.ema_spans) or len(set(self.ema_spans)) != len(
            self.ema_spans
        ):
            raise ValueError(f"ema_spans must be distinct positive integers, got {self.ema_spans}")
        for name in ("cross_fast", "cross_slow"):
            if getattr(self, name) not in self.ema_spans:
                raise ValueError(f"{name}={getattr(self, name)} is not one of {self.ema_spans}")
        if self.cross_fast >= self.cross_slow:
            raise ValueError(f"cross_fast ({self.cross_fast}) must be below cross_slow")
        return self

    @classmethod
    def from_params(cls, params: dict[str, Any], base: PatternConfig | None = None) -> Self:
        """A strategy row's `params` over `base`: keys the row leaves out keep base's values."""
        merged = (base or cls()).model_dump() | params
        return cls.model_validate(merged)

    @property
    def ring(self) -> int:
        """Length of the per-symbol price and volume history the windows read."""
        return max(self.zscore_window, self.breakout_window, self.volume_window)

    @property
    def cooldown_ns(self) -> int:
        return round(self.cooldown_s * 1e9)

    @property
    def session_offset_ns(self) -> int:
        return self.session_utc_offset_minutes * 60 * 1_000_000_000

    def to_vector(self) -> np.ndarray[Any, np.dtype[np.float64]]:
        """The parameter vector of the kernels (every value exact in a float64)."""
        vec = np.zeros(P_LEN, dtype=np.float64)
        spans = self.ema_spans
        vec[P_N_EMAS] = len(spans)
        vec[P_SEED_SMA] = 1.0 if self.ema_seed == "sma" else 0.0
        vec[P_Z_WINDOW] = self.zscore_window
        vec[P_BREAKOUT_WINDOW] = self.breakout_window
        vec[P_VOLUME_WINDOW] = self.volume_window
        vec[P_RING] = self.ring
        vec[P_Z_THRESHOLD] = self.zscore_threshold
        vec[P_VOLUME_RATIO] = self.volume_spike_ratio
        vec[P_FAST] = spans.index(self.cross_fast)
        vec[P_SLOW] = spans.index(self.cross_slow)
        vec[P_VWAP_MIN_TICKS] = self.vwap_min_ticks
        vec[P_ENABLED] = sum(1 << SignalCode[kind.name] for kind in self.enabled)
        vec[P_COOLDOWN_NS] = self.cooldown_ns  # < 2**53 ns (104 days): exact
        vec[P_SESSION_OFFSET_NS] = self.session_offset_ns
        for i, span in enumerate(spans):
            vec[P_EMA_ALPHA + i] = 2.0 / (span + 1.0)
            vec[P_EMA_SPAN + i] = span
        return vec
