"""Which symbols the council studies: a point-in-time screen of the snapshot.

A model cannot read a 482-symbol universe in one prompt, and should not have
to: the screen picks at most `max_symbols`, from the snapshot alone (so from
bars known at the run's instant, and the same every replay):

1. eligible: a bar within the last `max_stale_days` (a symbol that stopped
   trading is not studied), 21 bars of history (20-day return and volatility
   defined), mean dollar volume over 20 bars of at least `min_dollar_volume`
   (liquidity: an order must be fillable) and annualised volatility of at
   most `max_volatility`;
2. trend: each eligible symbol scores |20-day return| / 20-day volatility, a
   move measured in its own noise: strong trends and sharp reversals both
   score high, and the personas read them their own way;
3. sector balance: the places are shared among sectors in proportion to their
   eligible symbols (largest remainders; each sector with an eligible symbol
   gets one while places last), and each sector fills its places with its
   best-scoring symbols. Symbols without a sector form one group.

Every symbol left out has its reason, for the run's record.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.snapshot import MarketSnapshot, SymbolMetrics
from services.settings import Settings

UNCLASSIFIED = "(no sector)"
VOL_FLOOR = 0.05  # a near-flat series must not score as a huge trend


@dataclass(frozen=True)
class ScreenRules:
    max_symbols: int = 60
    min_dollar_volume: float = 5e6
    max_volatility: float = 1.0
    max_stale_days: int = 10


@dataclass(frozen=True)
class Screen:
    chosen: list[str]  # by sector, then symbol
    excluded: dict[str, str] = field(default_factory=dict)  # symbol -> why
    sectors: dict[str, str] = field(default_factory=dict)  # chosen symbol -> its group

    def describe(self) -> str:
        groups = len(set(self.sectors.values()))
        return f"{len(self.chosen)} symbols in {groups} sectors, {len(self.excluded)} left out"


def screen_rules(settings: Settings) -> ScreenRules:
    """The screen the settings configure (COUNCIL_SCREEN_*)."""
    return ScreenRules(
        max_symbols=settings.council_screen_max_symbols,
        min_dollar_volume=settings.council_screen_min_dollar_volume,
        max_volatility=settings.council_screen_max_volatility,
    )


def screen(snapshot: MarketSnapshot, rules: ScreenRules) -> Screen:
    excluded: dict[str, str] = {s: "no bars known at the run's instant" for s in snapshot.missing}
    eligible: list[SymbolMetrics] = []
    stale_before = snapshot.knowledge_cutoff - timedelta(days=rules.max_stale_days)
    for m in snapshot.symbols:
        why = _ineligible(m, rules, stale_before)
        if why is None:
            eligible.append(m)
        else:
            excluded[m.symbol] = why
    groups: dict[str, list[SymbolMetrics]] = defaultdict(list)
    for m in eligible:
        groups[m.sector or UNCLASSIFIED].append(m)
    places = _places(rules.max_symbols, {g: len(ms) for g, ms in groups.items()})
    chosen: dict[str, str] = {}
    for group in sorted(groups):
        ranked = sorted(groups[group], key=lambda m: (-_trend(m), m.symbol))
        for i, m in enumerate(ranked):
            if i < places.get(group, 0):
                chosen[m.symbol] = group
            else:
                excluded[m.symbol] = (
                    f"trend score {_trend(m):.2f} ranked below the {places.get(group, 0)} "
                    f"places of {group}"
                )
    order = sorted(chosen, key=lambda s: (chosen[s], s))
    return Screen(order, dict(sorted(excluded.items())), chosen)


def _ineligible(m: SymbolMetrics, rules: ScreenRules, stale_before: datetime) -> str | None:
    if m.last_bar < stale_before:
        return f"no bar since {m.last_bar:%Y-%m-%d}"
    if m.ret_20d is None or m.vol_20d is None:
        return "fewer than 21 bars of history"
    if m.dollar_volume_20d is None or m.dollar_volume_20d < rules.min_dollar_volume:
        volume = m.dollar_volume_20d or 0.0
        return f"illiquid: ${volume:,.0f} a day, under ${rules.min_dollar_volume:,.0f}"
    if m.vol_20d > rules.max_volatility:
        return f"too volatile: {m.vol_20d:.0%} annualised, over {rules.max_volatility:.0%}"
    return None


def _trend(m: SymbolMetrics) -> float:
    return abs(m.ret_20d or 0.0) / max(m.vol_20d or 0.0, VOL_FLOOR)


def _places(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """`total` places shared in proportion to `sizes`, each group at most its size."""
    if sum(sizes.values()) <= total:
        return dict(sizes)
    everyone = sum(sizes.values())
    groups = sorted(sizes, key=lambda g: (-sizes[g], g))
    places = {g: 1 if i < total else 0 for i, g in enumerate(groups)}
    left = total - sum(places.values())
    if left <= 0:
        return places
    shares = {g: left * sizes[g] / everyone for g in groups}
    for g in groups:
        places[g] = min(sizes[g], places[g] + math.floor(shares[g]))
    left = total - sum(places.values())
    by_remainder = sorted(groups, key=lambda g: (-(shares[g] % 1), g))
    while left > 0:
        grew = False
        for g in by_remainder:
            if left and places[g] < sizes[g]:
                places[g] += 1
                left -= 1
                grew = True
        if not grew:
            break
    return places
