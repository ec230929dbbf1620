"""The offline analyst's chairman stage: a `ChairmanVerdict` from the peer ranking.

Walks the ranking best first (score, then label) and takes a pitch when it
was shown in the context, scored at least `SCORE_FLOOR`, and its symbol is
not taken by a better-ranked pitch, until `max_positions`. Weights are
proportional to score, the best at `max_weight`, scaled down if they would
sum past 1, and rounded down to 6 places, so the book never leverages. The
action follows the pitch's side; sizing into orders is left to
deterministic code downstream.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from models.enums import DecisionAction, Side
from models.llm_outputs import ChairmanCall, ChairmanVerdict, PitchProposal
from models.snapshot import MarketSnapshot, SymbolMetrics
from services.llm.offline_context import LabelledPitch, OfflineContextError, RankedPitch
from services.llm.offline_signals import pct

SCORE_FLOOR = Decimal("0.5")
WEIGHT_STEP = Decimal("0.000001")
_LISTED = 10


def decide(
    snapshot: MarketSnapshot,
    pitches: list[LabelledPitch],
    ranking: list[RankedPitch],
    max_positions: int | None,
    max_weight: Decimal | None,
) -> ChairmanVerdict:
    if max_positions is None or max_weight is None:
        raise OfflineContextError("the chairman needs max_positions and max_weight in the context")
    shown = {p.label: p.pitch for p in pitches}
    ordered = sorted(ranking, key=lambda r: (-r.score, r.label))
    chosen: list[tuple[int, RankedPitch, PitchProposal]] = []
    skipped: list[str] = []
    symbols: set[str] = set()
    for rank, entry in enumerate(ordered, start=1):
        pitch = shown.get(entry.label)
        reason = _skip_reason(entry, pitch, symbols, len(chosen) >= max_positions)
        if reason:
            skipped.append(f"{entry.label} {reason}")
            continue
        assert pitch is not None
        chosen.append((rank, entry, pitch))
        symbols.add(pitch.symbol)
    weights = _weights([entry.score for _, entry, _ in chosen], max_weight)
    metrics = {m.symbol: m for m in snapshot.symbols}
    calls = [
        ChairmanCall(
            symbol=pitch.symbol,
            action=DecisionAction.BUY if pitch.side is Side.BUY else DecisionAction.SELL,
            conviction=entry.score.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN),
            target_weight=weight,
            rationale=_rationale(rank, len(ordered), entry, pitch, metrics.get(pitch.symbol)),
            pitch=entry.label,
        )
        for (rank, entry, pitch), weight in zip(chosen, weights, strict=True)
        if weight > 0
    ]
    return ChairmanVerdict(calls=calls, summary=_summary(calls, ordered, skipped, max_positions))


def _skip_reason(
    entry: RankedPitch, pitch: PitchProposal | None, symbols: set[str], full: bool
) -> str:
    if pitch is None:
        return "was not among the pitches shown"
    if entry.score < SCORE_FLOOR:
        return f"scored {entry.score:.2f}, below the {SCORE_FLOOR:.2f} floor"
    if pitch.symbol in symbols:
        return f"repeats {pitch.symbol}, taken by a better-ranked pitch"
    if full:
        return "ranked below the max_positions cut"
    return ""


def _weights(scores: list[Decimal], max_weight: Decimal) -> list[Decimal]:
    if not scores:
        return []
    best = max(scores)
    raw = [max_weight * score / best for score in scores]
    total = sum(raw, Decimal(0))
    if total > 1:
        raw = [w / total for w in raw]
    return [w.quantize(WEIGHT_STEP, rounding=ROUND_DOWN) for w in raw]


def _rationale(
    rank: int, ranked: int, entry: RankedPitch, pitch: PitchProposal, m: SymbolMetrics | None
) -> str:
    text = (
        f"Pitch {entry.label} ({pitch.side} {pitch.symbol}, conviction {pitch.conviction}) "
        f"ranked {rank} of {ranked} with review score {entry.score:.2f} "
        f"over {entry.reviews} review(s)"
    )
    figures = _figures(m)
    if figures:
        text += f"; snapshot: {figures}"
    return text + ". Offline chairman: weights proportional to review score."


def _figures(m: SymbolMetrics | None) -> str:
    if m is None:
        return ""
    parts = [f"close {m.close:.2f}"]
    if m.ret_20d is not None:
        parts.append(f"20d {pct(m.ret_20d)}")
    if m.vol_20d is not None:
        parts.append(f"vol {m.vol_20d:.0%}")
    return ", ".join(parts)


def _summary(
    calls: list[ChairmanCall], ordered: list[RankedPitch], skipped: list[str], max_positions: int
) -> str:
    total = sum((c.target_weight for c in calls), Decimal(0))
    text = (
        f"Offline chairman: {len(calls)} of {len(ordered)} ranked pitch(es) taken "
        f"(max_positions {max_positions}, score floor {SCORE_FLOOR:.2f}), total weight {total}."
    )
    if calls:
        text += " Taken: " + ", ".join(f"{c.pitch} {c.action} {c.symbol}" for c in calls) + "."
    if skipped:
        more = f"; and {len(skipped) - _LISTED} more" if len(skipped) > _LISTED else ""
        text += " Skipped: " + "; ".join(skipped[:_LISTED]) + more + "."
    return text
