"""The offline personas' signals: what each one reads from a symbol's metrics, with the numbers.

A `Signal` is a signed strength in standard deviations of the symbol's own
moves (> 0 bullish, < 0 bearish), a stance once the persona's filters agree,
a confidence scaled from the strength, and the line of figures behind it.

* momentum: 20d and 5d returns in vol units, confirmed by trading above
  (below) both SMA20 and SMA50.
* mean_reversion: a 5d move of at least one 5-day sd, faded; a dip is only
  bought above SMA50 (a pullback in an uptrend, not a falling knife).
* risk_parity: calm names (vol at or below the universe median) in an
  uptrend; confidence is inverse to vol.
* contrarian: fades the research packs' consensus on a symbol; where no pack
  noted it, fades a 20d move of 1.5 sd or more.

A symbol missing a figure its persona reads gets no signal (never a guess).
Pure: no I/O, no clock; equal inputs give equal signals.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum

from models.llm_outputs import ResearchPack, Stance
from models.snapshot import MarketSnapshot, SymbolMetrics

TRADING_DAYS = 252
NEUTRAL_CONFIDENCE = Decimal("0.20")


class Persona(StrEnum):
    MOMENTUM = "momentum"
    MEAN_REVERSION = "mean_reversion"
    RISK_PARITY = "risk_parity"
    CONTRARIAN = "contrarian"


@dataclass(frozen=True, slots=True)
class Signal:
    metrics: SymbolMetrics
    score: float
    stance: Stance
    confidence: Decimal
    reading: str

    @property
    def symbol(self) -> str:
        return self.metrics.symbol


def read_signals(
    persona: Persona, snapshot: MarketSnapshot, research: Sequence[ResearchPack]
) -> list[Signal]:
    """Every symbol's signal for `persona`, strongest bullish first (ties by symbol)."""
    median_vol = median_volatility(snapshot)
    consensus = _consensus(research)
    signals = []
    for m in snapshot.symbols:
        signal = _read(persona, m, median_vol, consensus)
        if signal is not None:
            signals.append(signal)
    return sorted(signals, key=lambda s: (-s.score, s.symbol))


def median_volatility(snapshot: MarketSnapshot) -> float | None:
    vols = sorted(m.vol_20d for m in snapshot.symbols if m.vol_20d is not None and m.vol_20d > 0)
    return statistics.median(vols) if vols else None


def period_sd(vol_20d: float, days: int) -> float:
    """The sd of a `days`-day return implied by an annualised vol."""
    return vol_20d * math.sqrt(days / TRADING_DAYS)


def pct(value: float) -> str:
    return f"{value:+.1%}"


def probability(value: float) -> Decimal:
    """`value` clamped to [0, 1] and rounded to cents, as the schemas' `Probability`."""
    clamped = min(max(value, 0.0), 1.0)
    return Decimal(clamped).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def _read(
    persona: Persona,
    m: SymbolMetrics,
    median_vol: float | None,
    consensus: dict[str, tuple[float, int]],
) -> Signal | None:
    if m.vol_20d is None or m.vol_20d <= 0:
        return None
    if persona is Persona.MOMENTUM:
        return _momentum(m, m.vol_20d)
    if persona is Persona.MEAN_REVERSION:
        return _mean_reversion(m, m.vol_20d)
    if persona is Persona.RISK_PARITY:
        return _risk_parity(m, m.vol_20d, median_vol)
    if m.symbol in consensus:
        return _fade_consensus(m, *consensus[m.symbol])
    return _fade_move(m, m.vol_20d)


def _momentum(m: SymbolMetrics, vol: float) -> Signal | None:
    ret_20d, ret_5d, sma_20, sma_50 = m.ret_20d, m.ret_5d, m.dist_sma_20, m.dist_sma_50
    if ret_20d is None or ret_5d is None or sma_20 is None or sma_50 is None:
        return None
    score = 0.7 * ret_20d / period_sd(vol, 20) + 0.3 * ret_5d / period_sd(vol, 5)
    stance = Stance.NEUTRAL
    if score > 0.5 and sma_20 > 0 and sma_50 > 0:
        stance = Stance.BULLISH
    elif score < -0.5 and sma_20 < 0 and sma_50 < 0:
        stance = Stance.BEARISH
    reading = (
        f"20d {pct(ret_20d)}, 5d {pct(ret_5d)} ({score:+.1f} sd), "
        f"{pct(sma_20)} vs SMA20, {pct(sma_50)} vs SMA50, vol {vol:.0%}"
    )
    return _signal(m, score, stance, reading)


def _mean_reversion(m: SymbolMetrics, vol: float) -> Signal | None:
    if m.ret_5d is None or m.dist_sma_50 is None:
        return None
    stretch = m.ret_5d / period_sd(vol, 5)
    stance = Stance.NEUTRAL
    if stretch <= -1 and m.dist_sma_50 > 0:
        stance = Stance.BULLISH
    elif stretch >= 1:
        stance = Stance.BEARISH
    reading = (
        f"5d {pct(m.ret_5d)} = {stretch:+.1f} sd of 5-day moves, "
        f"{pct(m.dist_sma_50)} vs SMA50, vol {vol:.0%}"
    )
    return _signal(m, -stretch, stance, reading)


def _risk_parity(m: SymbolMetrics, vol: float, median_vol: float | None) -> Signal | None:
    if m.ret_20d is None or m.dist_sma_50 is None or median_vol is None:
        return None
    calm = median_vol / vol
    trend = 0
    if m.ret_20d > 0 and m.dist_sma_50 > 0:
        trend = 1
    elif m.ret_20d < 0 and m.dist_sma_50 < 0:
        trend = -1
    stance = Stance.NEUTRAL
    if trend > 0 and vol <= median_vol:
        stance = Stance.BULLISH
    elif trend < 0:
        stance = Stance.BEARISH
    reading = (
        f"vol {vol:.0%} vs universe median {median_vol:.0%}, "
        f"20d {pct(m.ret_20d)}, {pct(m.dist_sma_50)} vs SMA50"
    )
    confidence = (
        NEUTRAL_CONFIDENCE if stance is Stance.NEUTRAL else probability(min(0.5 * calm, 0.95))
    )
    return Signal(m, trend * calm, stance, confidence, reading)


def _fade_consensus(m: SymbolMetrics, crowd: float, packs: int) -> Signal:
    stance = Stance.NEUTRAL
    if crowd <= -0.3:
        stance = Stance.BULLISH
    elif crowd >= 0.3:
        stance = Stance.BEARISH
    reading = f"research consensus {crowd:+.2f} over {packs} pack(s), faded beyond 0.30"
    if m.ret_20d is not None:
        reading += f"; 20d {pct(m.ret_20d)}"
    # Consensus is in [-1, 1]; scale it like a 3-sd price signal so confidences compare.
    return _signal(m, -3 * crowd, stance, reading)


def _fade_move(m: SymbolMetrics, vol: float) -> Signal | None:
    if m.ret_20d is None:
        return None
    stretch = m.ret_20d / period_sd(vol, 20)
    stance = Stance.NEUTRAL
    if stretch <= -1.5:
        stance = Stance.BULLISH
    elif stretch >= 1.5:
        stance = Stance.BEARISH
    reading = (
        f"no research consensus to fade; 20d {pct(m.ret_20d)} = {stretch:+.1f} sd, "
        "faded beyond 1.5 sd"
    )
    return _signal(m, -stretch, stance, reading)


def _signal(m: SymbolMetrics, score: float, stance: Stance, reading: str) -> Signal:
    """Confidence: |score| / 3 sd, within [0.05, 0.95]; a neutral reading gets a flat 0.20."""
    if stance is Stance.NEUTRAL:
        confidence = NEUTRAL_CONFIDENCE
    else:
        confidence = probability(min(max(abs(score) / 3, 0.05), 0.95))
    return Signal(m, score, stance, confidence, reading)


def _consensus(research: Sequence[ResearchPack]) -> dict[str, tuple[float, int]]:
    """Per symbol: the mean of +confidence (bullish), -confidence (bearish), 0 (neutral)."""
    votes: dict[str, list[float]] = {}
    sign = {Stance.BULLISH: 1.0, Stance.BEARISH: -1.0, Stance.NEUTRAL: 0.0}
    for pack in research:
        for note in pack.notes:
            votes.setdefault(note.symbol, []).append(sign[note.stance] * float(note.confidence))
    return {symbol: (math.fsum(v) / len(v), len(v)) for symbol, v in votes.items()}
