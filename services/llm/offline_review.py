"""The offline analyst's review stage: one scored `PeerReviewOutput` per labelled pitch.

A pitch starts at 0.5 and is scored against the snapshot, not its author:

* support (+-0.3): how many of the 20d return, 5d return and distance to
  SMA50 point the pitch's way, net of those pointing against it;
* reward/risk: +0.1 at >= 2, +0.05 at >= 1.5, -0.1 below or without a full bracket;
* stop width in sd of horizon-day moves: -0.1 inside 0.5 sd (noise), -0.05 beyond 3 sd;
* entry more than 2% from the last close: -0.1.

A pitch on a symbol the snapshot lacks scores 0.1: nothing supports it.
Reviews are persona-neutral: every offline reviewer scores a pitch alike.
"""

from __future__ import annotations

import math
from decimal import Decimal

from models.enums import Side
from models.llm_outputs import PeerReviewBatch, PeerReviewOutput, PitchProposal
from models.snapshot import MarketSnapshot, SymbolMetrics
from services.llm.offline_context import LabelledPitch, OfflineContextError
from services.llm.offline_signals import pct, period_sd, probability

NO_DATA_SCORE = 0.1
MAX_ENTRY_GAP = 0.02


def review_pitches(snapshot: MarketSnapshot, pitches: list[LabelledPitch]) -> PeerReviewBatch:
    if not pitches:
        raise OfflineContextError("a review needs pitches in the context; none were given")
    metrics = {m.symbol: m for m in snapshot.symbols}
    return PeerReviewBatch(
        reviews=[
            _review(p.label, p.pitch, metrics.get(p.pitch.symbol))
            for p in sorted(pitches, key=lambda p: (len(p.label), p.label))  # A..Z, then AA
        ]
    )


def _review(label: str, pitch: PitchProposal, m: SymbolMetrics | None) -> PeerReviewOutput:
    head = f"{pitch.side} {pitch.symbol}"
    if m is None:
        return PeerReviewOutput(
            pitch=label,
            score=probability(NO_DATA_SCORE),
            critique=f"{head}: the snapshot has no data on {pitch.symbol}; nothing supports it.",
            flaws=[f"no data for {pitch.symbol} in the snapshot"],
        )
    score, findings, flaws = 0.5, [], []
    support, agree, counted, figures = _support(pitch.side, m)
    score += 0.3 * support
    findings.append(f"{agree} of {counted} trend figures agree ({figures})")
    if support < 0:
        flaws.append(f"data against the {pitch.side}: {figures}")
    for adjustment, finding, flaw in (
        _reward_risk(pitch),
        _stop_width(pitch, m),
        _entry_gap(pitch, m),
    ):
        score += adjustment
        if finding:
            findings.append(finding)
        if flaw:
            flaws.append(flaw)
    return PeerReviewOutput(
        pitch=label,
        score=probability(score),
        critique=(
            f"{head}: {'; '.join(findings)}. "
            "Offline reviewer: scored from the market snapshot, not a language model."
        ),
        flaws=flaws,
    )


def _support(side: Side, m: SymbolMetrics) -> tuple[float, int, int, str]:
    """(net agreement in [-1, 1], agreeing, counted, the figures) of the trend with `side`."""
    figures = [("20d", m.ret_20d), ("5d", m.ret_5d), ("vs SMA50", m.dist_sma_50)]
    present = [(name, value) for name, value in figures if value is not None]
    direction = 1 if side is Side.BUY else -1
    agree = sum(1 for _, value in present if direction * value > 0)
    against = sum(1 for _, value in present if direction * value < 0)
    net = (agree - against) / len(present) if present else 0.0
    shown = ", ".join(f"{name} {pct(value)}" for name, value in present) or "no trend figures"
    return net, agree, len(present), shown


def _reward_risk(pitch: PitchProposal) -> tuple[float, str, str]:
    entry, stop, target = pitch.entry_price, pitch.stop_loss, pitch.take_profit
    if entry is None or stop is None or target is None:
        return -0.1, "", "no complete bracket (entry, stop, target)"
    ratio = abs(target - entry) / abs(entry - stop)
    finding = f"reward/risk {ratio:.1f}"
    if ratio >= 2:
        return 0.1, finding, ""
    if ratio >= Decimal("1.5"):
        return 0.05, finding, ""
    return -0.1, finding, f"reward/risk {ratio:.1f} below 1.5"


def _stop_width(pitch: PitchProposal, m: SymbolMetrics) -> tuple[float, str, str]:
    if pitch.entry_price is None or pitch.stop_loss is None or not m.vol_20d:
        return 0.0, "", ""
    distance = float(abs(pitch.entry_price - pitch.stop_loss) / pitch.entry_price)
    sds = distance / period_sd(m.vol_20d, pitch.horizon_days)
    finding = (
        f"stop {distance:.1%} away = {sds:.1f} sd of {pitch.horizon_days}-day moves "
        f"(vol {m.vol_20d:.0%})"
    )
    if sds < 0.5:
        return -0.1, finding, f"stop inside the noise: {sds:.1f} sd"
    if sds > 3:
        return -0.05, finding, f"stop wide: {sds:.1f} sd"
    return 0.0, finding, ""


def _entry_gap(pitch: PitchProposal, m: SymbolMetrics) -> tuple[float, str, str]:
    if pitch.entry_price is None or m.close <= 0:
        return 0.0, "", ""
    gap = float(pitch.entry_price) / m.close - 1
    if not math.isfinite(gap) or abs(gap) <= MAX_ENTRY_GAP:
        return 0.0, "", ""
    return -0.1, "", f"entry {pitch.entry_price} is {pct(gap)} from the last close {m.close:.2f}"
