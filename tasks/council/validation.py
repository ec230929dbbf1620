"""What the council refuses from a model, whatever it wrote: each refusal says why.

Pitches: the symbol must be in the snapshot's universe (with a price) and,
when the run's research is known, among the symbols it researched; the
bracket must be complete (take-profit and stop-loss), on the right sides of
the entry (the last close when the pitch gives none), the entry within reach
of the last close and each exit within reach of the entry, and with at least
the minimum reward/risk.

Chairman calls: a buy or sell must name a pitch shown to the council, on
that pitch's symbol and side; its weight must respect the per-position cap.
Holds are not trades and are kept only as a record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from models.enums import DecisionAction, Side
from models.llm_outputs import ChairmanCall, PitchProposal
from models.snapshot import MarketSnapshot

MAX_ENTRY_DISTANCE = Decimal("0.10")  # a limit entry more than 10 % from the last close is a typo
MAX_EXIT_DISTANCE = Decimal("0.50")  # an exit half the price away is no bracket for a week


@dataclass(frozen=True)
class PitchRules:
    min_reward_risk: Decimal = Decimal("1.5")
    max_entry_distance: Decimal = MAX_ENTRY_DISTANCE
    max_exit_distance: Decimal = MAX_EXIT_DISTANCE
    researched: frozenset[str] | None = None  # None: any symbol of the universe


def pitch_problem(pitch: PitchProposal, snapshot: MarketSnapshot, rules: PitchRules) -> str | None:
    """None if the pitch may go on to review; otherwise the reason it is dropped."""
    closes = {m.symbol: Decimal(str(m.close)) for m in snapshot.symbols}
    close = closes.get(pitch.symbol)
    if close is None:
        return f"{pitch.symbol} is not in the council's universe"
    if rules.researched is not None and pitch.symbol not in rules.researched:
        return f"{pitch.symbol} was not researched this run: a pitch needs a research note"
    if pitch.take_profit is None or pitch.stop_loss is None:
        return "a bracket needs both a take-profit and a stop-loss"
    entry = pitch.entry_price or close
    if abs(entry / close - 1) > rules.max_entry_distance:
        return (
            f"entry {entry} is more than {rules.max_entry_distance:.0%} from the last close {close}"
        )
    low, high = (
        (pitch.stop_loss, pitch.take_profit)
        if pitch.side is Side.BUY
        else (pitch.take_profit, pitch.stop_loss)
    )
    if not low < entry < high:
        order = "stop < entry < target" if pitch.side is Side.BUY else "target < entry < stop"
        return (
            f"a {pitch.side} needs {order}, got stop {pitch.stop_loss}, entry {entry}, "
            f"target {pitch.take_profit}"
        )
    for name, exit_price in (("take-profit", pitch.take_profit), ("stop-loss", pitch.stop_loss)):
        if abs(exit_price / entry - 1) > rules.max_exit_distance:
            far = f"more than {rules.max_exit_distance:.0%} from the entry {entry}"
            return f"{name} {exit_price} is {far}"
    reward_risk = abs(pitch.take_profit - entry) / abs(entry - pitch.stop_loss)
    if reward_risk < rules.min_reward_risk:
        return f"reward/risk {reward_risk:.2f} is below the minimum {rules.min_reward_risk}"
    return None


@dataclass(frozen=True)
class ChairRules:
    max_positions: int = 5
    max_weight: Decimal = Decimal("0.2")


def call_problem(
    call: ChairmanCall, pitches: Mapping[str, PitchProposal], rules: ChairRules
) -> str | None:
    """None if the call may become a trade intent; otherwise why it is rejected."""
    if call.action is DecisionAction.HOLD:
        return None
    if call.pitch is None:
        return f"a {call.action} must name the pitch it acts on"
    pitch = pitches.get(call.pitch)
    if pitch is None:
        return f"pitch {call.pitch} was not shown to the council"
    if pitch.symbol != call.symbol:
        return f"pitch {call.pitch} is on {pitch.symbol}, not {call.symbol}"
    if str(pitch.side) != str(call.action):
        return f"pitch {call.pitch} is a {pitch.side}; a chairman cannot make it a {call.action}"
    if call.target_weight > rules.max_weight:
        return f"weight {call.target_weight} is above the cap of {rules.max_weight} per position"
    return None
