"""The offline analyst's pitch stage: a `PitchBook` of at most `MAX_PITCHES` bracketed ideas.

Candidates are the persona's non-neutral signals (risk_parity pitches buys
only), strongest first. Each bracket is sized from the symbol's own vol:
entry at the last close, stop `STOP_SDS` sd of `HORIZON_DAYS`-day moves away,
target `REWARD_RISK` times as far on the other side, all rounded to cents.
A bracket that rounding makes incoherent, or a sell whose target would not
be positive, drops the idea rather than bending it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal

from models.enums import Side
from models.llm_outputs import PitchBook, PitchProposal, ResearchPack, Stance
from models.snapshot import MarketSnapshot
from services.llm.offline_signals import Persona, Signal, period_sd, read_signals

MAX_PITCHES = 3
HORIZON_DAYS = 5
STOP_SDS = 1.0
REWARD_RISK = 2.0
MIN_REWARD_RISK = Decimal("1.5")
CENT = Decimal("0.01")


def write_pitches(
    persona: Persona, snapshot: MarketSnapshot, research: Sequence[ResearchPack]
) -> PitchBook:
    candidates = [
        s
        for s in read_signals(persona, snapshot, research)
        if s.stance is Stance.BULLISH
        or (s.stance is Stance.BEARISH and persona is not Persona.RISK_PARITY)
    ]
    candidates.sort(key=lambda s: (-abs(s.score), s.symbol))
    pitches: list[PitchProposal] = []
    for signal in candidates:
        pitch = _pitch(persona, signal)
        if pitch is not None:
            pitches.append(pitch)
        if len(pitches) == MAX_PITCHES:
            break
    return PitchBook(pitches=pitches)


def _pitch(persona: Persona, signal: Signal) -> PitchProposal | None:
    vol = signal.metrics.vol_20d
    if vol is None:
        return None
    side = Side.BUY if signal.stance is Stance.BULLISH else Side.SELL
    move = STOP_SDS * period_sd(vol, HORIZON_DAYS)
    bracket = _bracket(side, signal.metrics.close, move)
    if bracket is None:
        return None
    entry, stop, target = bracket
    return PitchProposal(
        symbol=signal.symbol,
        side=side,
        conviction=signal.confidence,
        thesis=(
            f"{persona} {side} {signal.symbol}: {signal.reading}. "
            f"Entry {entry} (last close), stop {stop} ({STOP_SDS:.1f} sd of "
            f"{HORIZON_DAYS}-day moves = {move:.1%}), target {target} "
            f"({REWARD_RISK:.1f}x the risk), {HORIZON_DAYS} days. "
            "Offline analyst: computed from the market snapshot, not a language model."
        ),
        entry_price=entry,
        stop_loss=stop,
        take_profit=target,
        horizon_days=HORIZON_DAYS,
    )


def _bracket(side: Side, close: float, move: float) -> tuple[Decimal, Decimal, Decimal] | None:
    """(entry, stop, target) in cents, or None if no coherent bracket survives rounding."""
    entry = _cents(Decimal(close))
    risk = Decimal(move)
    reward = Decimal(REWARD_RISK * move)
    direction = 1 if side is Side.BUY else -1
    stop = _cents(entry * (1 - direction * risk))
    target = _cents(entry * (1 + direction * reward))
    if min(entry, stop, target) <= 0:
        return None
    lost, won = direction * (entry - stop), direction * (target - entry)
    if lost <= 0 or won < MIN_REWARD_RISK * lost:
        return None
    return entry, stop, target


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_EVEN)
