"""The offline analyst's research stage: a `ResearchPack` computed from the snapshot.

* regime: breadth (share above SMA50) and the mean 20d return decide
  risk-on (>= 60% and > 0), risk-off (<= 40% and < 0) or mixed;
* sector views: from each sector's mean returns and breadth;
* notes: the persona's signal for the strongest and weakest symbols (at most
  `MAX_NOTES`), each with the figures it rests on;
* risks: high-vol names, deep drawdowns, high average correlation, symbols
  without bars.

Deliberately left out: anything not in the snapshot (news, fundamentals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from models.llm_outputs import ResearchNote, ResearchPack, SectorView, Stance
from models.snapshot import MarketSnapshot, SectorMetrics, SymbolMetrics
from services.llm.offline_context import OfflineContextError
from services.llm.offline_signals import (
    Persona,
    Signal,
    median_volatility,
    pct,
    probability,
    read_signals,
)

MAX_NOTES = 20
MAX_SECTORS = 20
HIGH_VOL_MULTIPLE = 1.5
DEEP_DRAWDOWN = -0.15
HIGH_CORRELATION = 0.6
_LISTED = 5


def write_research(
    persona: Persona, snapshot: MarketSnapshot, research: Sequence[ResearchPack]
) -> ResearchPack:
    if not snapshot.symbols:
        raise OfflineContextError("the snapshot has no symbols: nothing to research")
    signals = read_signals(persona, snapshot, research)
    median_vol = median_volatility(snapshot)
    notes = (
        [_note(persona, s, median_vol) for s in _strongest_and_weakest(signals)]
        if signals
        else [_note_without_signal(persona, m) for m in _by_symbol(snapshot.symbols)[:MAX_NOTES]]
    )
    risks = _risks(snapshot)
    read = {s.symbol for s in signals}
    unread = sorted(m.symbol for m in snapshot.symbols if m.symbol not in read)
    if unread:
        more = f" and {len(unread) - _LISTED} more" if len(unread) > _LISTED else ""
        listed = ", ".join(unread[:_LISTED])
        risks.append(f"too little history for a {persona} reading: {listed}{more}")
    return ResearchPack(
        regime=_regime(snapshot),
        sector_views=_sector_views(snapshot.sectors),
        notes=notes,
        risks=risks,
    )


def merge_research(snapshot: MarketSnapshot, packs: Sequence[ResearchPack]) -> ResearchPack:
    """One pack from research done in shards: the market's regime and sector views from the
    snapshot's sector table, the most confident notes of the parts, their risks in order."""
    notes = sorted((n for p in packs for n in p.notes), key=lambda n: (-n.confidence, n.symbol))
    if not notes:
        raise OfflineContextError("no research parts with notes to combine")
    risks: list[str] = []
    for pack in packs:
        risks += [r for r in pack.risks if r not in risks]
    return ResearchPack(
        regime=_sector_regime(snapshot.sectors),
        sector_views=_sector_views(snapshot.sectors),
        notes=sorted(notes[:MAX_NOTES], key=lambda n: n.symbol),
        risks=risks[:12],
    )


def _sector_regime(sectors: Sequence[SectorMetrics]) -> str:
    """The regime from sector aggregates, each sector weighted by its symbols."""
    breadth = [
        (s.breadth_above_sma_50, s.symbols) for s in sectors if s.breadth_above_sma_50 is not None
    ]
    returns = [(s.mean_ret_20d, s.symbols) for s in sectors if s.mean_ret_20d is not None]
    if not breadth or not returns:
        return f"undetermined: {len(sectors)} sectors without SMA50 breadth or 20d returns"
    above = math.fsum(b * n for b, n in breadth) / sum(n for _, n in breadth)
    mean_20d = math.fsum(r * n for r, n in returns) / sum(n for _, n in returns)
    label = _label(above, mean_20d)
    counted = sum(n for _, n in breadth)
    return (
        f"{label}: {above:.0%} of {counted} symbols above SMA50, "
        f"mean 20d return {pct(mean_20d)} across {len(returns)} sectors"
    )


def _label(breadth: float, mean_20d: float) -> str:
    if breadth >= 0.6 and mean_20d > 0:
        return "risk-on"
    if breadth <= 0.4 and mean_20d < 0:
        return "risk-off"
    return "mixed"


def _strongest_and_weakest(signals: list[Signal]) -> list[Signal]:
    """`signals` sorted strongest first; the top and bottom MAX_NOTES / 2 when there are more."""
    if len(signals) <= MAX_NOTES:
        return signals
    half = MAX_NOTES // 2
    return signals[:half] + signals[-half:]


def _note(persona: Persona, signal: Signal, median_vol: float | None) -> ResearchNote:
    return ResearchNote(
        symbol=signal.symbol,
        stance=signal.stance,
        confidence=signal.confidence,
        summary=(
            f"{persona} reading: {signal.stance}. {signal.reading}. "
            "Offline analyst: computed from the market snapshot, not a language model."
        ),
        evidence=_figures(signal.metrics),
        risks=_symbol_risks(signal.metrics, median_vol),
    )


def _note_without_signal(persona: Persona, m: SymbolMetrics) -> ResearchNote:
    return ResearchNote(
        symbol=m.symbol,
        stance=Stance.NEUTRAL,
        confidence=probability(0),
        summary=(
            f"{persona} reading: none, the snapshot lacks the figures it needs "
            "(history too short). Offline analyst: no figure is guessed."
        ),
        evidence=_figures(m),
    )


def _figures(m: SymbolMetrics) -> list[str]:
    figures = [f"close {m.close:.2f}"]
    returns = [("1d", m.ret_1d), ("5d", m.ret_5d), ("20d", m.ret_20d)]
    figures += [f"{name} return {pct(value)}" for name, value in returns if value is not None]
    if m.vol_20d is not None:
        figures.append(f"vol 20d {m.vol_20d:.0%} annualised")
    if m.dist_sma_20 is not None:
        figures.append(f"{pct(m.dist_sma_20)} vs SMA20")
    if m.dist_sma_50 is not None:
        figures.append(f"{pct(m.dist_sma_50)} vs SMA50")
    if m.drawdown_60d is not None:
        figures.append(f"60d drawdown {pct(m.drawdown_60d)}")
    if m.sector:
        figures.append(f"sector {m.sector}"[:300])
    return figures


def _symbol_risks(m: SymbolMetrics, median_vol: float | None) -> list[str]:
    risks = []
    if m.vol_20d is not None and median_vol and m.vol_20d > HIGH_VOL_MULTIPLE * median_vol:
        risks.append(f"vol {m.vol_20d:.0%} vs universe median {median_vol:.0%}")
    if m.drawdown_60d is not None and m.drawdown_60d <= DEEP_DRAWDOWN:
        risks.append(f"60d drawdown {pct(m.drawdown_60d)}")
    return risks


def _regime(snapshot: MarketSnapshot) -> str:
    above = [m.dist_sma_50 > 0 for m in snapshot.symbols if m.dist_sma_50 is not None]
    returns = [m.ret_20d for m in snapshot.symbols if m.ret_20d is not None]
    if not above or not returns:
        return (
            f"undetermined: {len(snapshot.symbols)} symbols, too little history "
            "for SMA50 breadth and 20d returns"
        )
    breadth = sum(above) / len(above)
    mean_20d = math.fsum(returns) / len(returns)
    label = _label(breadth, mean_20d)
    return (
        f"{label}: {breadth:.0%} of {len(above)} symbols above SMA50, "
        f"mean 20d return {pct(mean_20d)} over {len(returns)} symbols"
    )


def _sector_views(sectors: list[SectorMetrics]) -> list[SectorView]:
    largest = sorted(sectors, key=lambda s: (-s.symbols, s.sector))[:MAX_SECTORS]
    return [_sector_view(s) for s in sorted(largest, key=lambda s: s.sector)]


def _sector_view(s: SectorMetrics) -> SectorView:
    ret_20d, breadth = s.mean_ret_20d, s.breadth_above_sma_50
    stance = Stance.NEUTRAL
    if ret_20d is not None and breadth is not None:
        if ret_20d > 0 and breadth >= 0.5:
            stance = Stance.BULLISH
        elif ret_20d < 0 and breadth < 0.5:
            stance = Stance.BEARISH
    parts = [
        f"mean 20d {pct(ret_20d)}" if ret_20d is not None else "no 20d returns",
        f"mean 5d {pct(s.mean_ret_5d)}" if s.mean_ret_5d is not None else "no 5d returns",
        f"{breadth:.0%} above SMA50" if breadth is not None else "no SMA50 breadth",
    ]
    return SectorView(
        sector=s.sector[:300],
        stance=stance,
        reason=f"{', '.join(parts)} ({s.symbols} symbols)",
    )


def _risks(snapshot: MarketSnapshot) -> list[str]:
    risks = []
    median_vol = median_volatility(snapshot)
    if median_vol:
        hot = [
            m
            for m in snapshot.symbols
            if m.vol_20d is not None and m.vol_20d > HIGH_VOL_MULTIPLE * median_vol
        ]
        hot.sort(key=lambda m: (-(m.vol_20d or 0), m.symbol))
        if hot:
            listed = ", ".join(f"{m.symbol} {m.vol_20d:.0%}" for m in hot[:_LISTED])
            risks.append(f"high volatility: {listed} (universe median {median_vol:.0%})")
    deep = [
        m
        for m in snapshot.symbols
        if m.drawdown_60d is not None and m.drawdown_60d <= DEEP_DRAWDOWN
    ]
    deep.sort(key=lambda m: (m.drawdown_60d or 0, m.symbol))
    if deep:
        listed = ", ".join(f"{m.symbol} {pct(m.drawdown_60d or 0)}" for m in deep[:_LISTED])
        risks.append(f"deep 60d drawdowns: {listed}")
    correlation = _mean_correlation(snapshot)
    if correlation is not None and correlation >= HIGH_CORRELATION:
        risks.append(
            f"average pairwise correlation {correlation:.2f} over "
            f"{snapshot.correlation.window} bars: positions would move together"
        )
    if snapshot.missing:
        missing = sorted(snapshot.missing)
        more = f" and {len(missing) - _LISTED} more" if len(missing) > _LISTED else ""
        risks.append(f"no bars for {', '.join(missing[:_LISTED])}{more}: not analysed")
    return risks


def _mean_correlation(snapshot: MarketSnapshot) -> float | None:
    matrix = snapshot.correlation.matrix
    pairs = [
        value
        for i, row in enumerate(matrix)
        for j, value in enumerate(row)
        if j > i and value is not None
    ]
    return math.fsum(pairs) / len(pairs) if pairs else None


def _by_symbol(symbols: list[SymbolMetrics]) -> list[SymbolMetrics]:
    return sorted(symbols, key=lambda m: m.symbol)
