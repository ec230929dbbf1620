"""Each pitch against what followed it, and each reviewer's scores against those outcomes.

A pitch is entered at the next open after its sitting and followed for its
horizon (`horizon_days` bars, the entry bar the first): whichever of its
take-profit and stop-loss the price reaches first ends it there, at the level
(or at the open, when a bar gaps past it); neither, and it ends at the close
of its last bar. "First" is the paper broker's reading of a daily bar (open,
then the extreme nearer the open, then the other: tasks/execution/paper_feed.py),
so an outcome agrees with what executing the pitch would have done. Returns
are before costs (this judges the idea, not the execution), signed by side,
and set against the equal-weight universe over the same bars: `excess` is
what the member added.

A reviewer's skill in a sitting is the rank correlation of the scores it gave
with the excess returns the pitches went on to make.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from models.enums import Side
from tasks.backtest.panel import PricePanel
from tasks.council.aggregate import spearman

TAKE_PROFIT, STOP_LOSS, HORIZON = "take_profit", "stop_loss", "horizon"


@dataclass(frozen=True)
class Outcome:
    outcome: str  # TAKE_PROFIT | STOP_LOSS | HORIZON
    entry_bar: int
    exit_bar: int
    entry_price: float
    exit_price: float
    ret: float  # signed by side: a short that fell gained
    universe_ret: float
    sign: float  # +1 long, -1 short

    @property
    def days(self) -> int:
        return self.exit_bar - self.entry_bar + 1

    @property
    def excess(self) -> float:
        """The return less the universe's taken the same way (a short's benchmark is the
        universe shorted)."""
        return self.ret - self.sign * self.universe_ret


def score_pitch(
    panel: PricePanel,
    symbol: str,
    bar: int,
    side: Side,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    horizon: int,
) -> Outcome | None:
    """The pitch decided at bar `bar`'s close, followed; None when the panel ends before its
    horizon does without either exit reached (not known yet) or it never trades again."""
    s = panel.symbols.index(symbol)
    traded = np.flatnonzero(~np.isnan(panel.open[bar + 1 :, s])) + bar + 1
    if traded.size == 0:
        return None
    long = side is Side.BUY
    tp = float(take_profit) if take_profit is not None else None
    sl = float(stop_loss) if stop_loss is not None else None
    entry_bar = int(traded[0])
    entry = float(panel.open[entry_bar, s])
    for k, t in enumerate(traded[: max(horizon, 1)]):
        t = int(t)
        hit = _first_touch(panel, s, t, long, tp, sl, entry_bar=k == 0)
        if hit is not None:
            reason, price = hit
            return _outcome(panel, reason, entry_bar, t, entry, price, long)
    if len(traded) < horizon:
        return None
    last = int(traded[horizon - 1])
    return _outcome(panel, HORIZON, entry_bar, last, entry, float(panel.close[last, s]), long)


def reviewer_rank_corr(scores: Mapping[int, float], excess: Mapping[int, float]) -> float | None:
    """Spearman's rho of a reviewer's scores against the pitches' excess returns, over the
    pitches it scored that have an outcome; None under 3 such pitches or without spread."""
    common = sorted(p for p in scores if p in excess)
    if len(common) < 3:
        return None
    return spearman([scores[p] for p in common], [excess[p] for p in common])


def _first_touch(
    panel: PricePanel,
    s: int,
    t: int,
    long: bool,
    tp: float | None,
    sl: float | None,
    *,
    entry_bar: bool,
) -> tuple[str, float] | None:
    o, h, lo = float(panel.open[t, s]), float(panel.high[t, s]), float(panel.low[t, s])
    if not entry_bar:  # a gap past a level fills at the open
        if sl is not None and (o <= sl if long else o >= sl):
            return STOP_LOSS, o
        if tp is not None and (o >= tp if long else o <= tp):
            return TAKE_PROFIT, o
    low_first = abs(o - lo) <= abs(h - o)
    for extreme in (lo, h) if low_first else (h, lo):
        down = extreme == lo
        # moving down reaches a long's stop or a short's target, moving up the others
        level, reason = (sl, STOP_LOSS) if down == long else (tp, TAKE_PROFIT)
        if level is not None and (extreme <= level if down else extreme >= level):
            return reason, level
    return None


def _outcome(
    panel: PricePanel,
    reason: str,
    entry_bar: int,
    exit_bar: int,
    entry: float,
    exit_price: float,
    long: bool,
) -> Outcome:
    sign = 1.0 if long else -1.0
    start, stop = panel.open[entry_bar], panel.close[exit_bar]
    both = np.isfinite(start) & np.isfinite(stop) & (start > 0)
    universe = float(np.mean(stop[both] / start[both] - 1.0)) if both.any() else 0.0
    return Outcome(
        outcome=reason,
        entry_bar=entry_bar,
        exit_bar=exit_bar,
        entry_price=entry,
        exit_price=exit_price,
        ret=sign * (exit_price / entry - 1.0),
        universe_ret=universe,
        sign=sign,
    )
