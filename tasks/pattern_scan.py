"""Scan stored bars with the realtime pattern engine: which patterns fired, and what followed.

The bars are replayed day by day through a fresh `PatternEngine` (close as the
price, volume as the size, the bar's stamp as the event time), exactly as ticks
would be: each signal is what the engine knew at that bar. When a pattern
classifier is given, it scores the signalling symbol's window at that moment.

What followed is measured afterwards, for the report only: the log return from
the signal's bar to `horizon` bars later, signed by the signal's side (a sell
that fell is a gain). Signals too close to the end to have a horizon count in
the tallies but not in the averages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.enums import Side
from realtime.patterns.config import PatternConfig
from realtime.patterns.engine import PatternEngine

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
Classify = Callable[[FloatArray], FloatArray]  # (n, window, 2) windows -> (n, 3) probabilities
CLASSES = ("down", "flat", "up")


@dataclass
class Found:
    symbol: str
    kind: str
    side: str
    score: float
    ts: pd.Timestamp
    ahead: float  # signed log return over the horizon; NaN near the end
    probs: tuple[float, float, float] | None = None


@dataclass
class Scan:
    signals: list[Found] = field(default_factory=list)
    bars: int = 0
    symbols: int = 0

    def by_kind(self) -> list[dict[str, Any]]:
        """One row per pattern: how often, which way, and how it did on average."""
        return _tally(self.signals, lambda f: f.kind, "kind")

    def by_class(self) -> list[dict[str, Any]]:
        """One row per classifier class (its top class at the signal)."""
        scored = [f for f in self.signals if f.probs is not None]
        return _tally(scored, lambda f: CLASSES[int(np.argmax(f.probs or ()))], "class")


def scan_bars(
    frame: pd.DataFrame,
    config: PatternConfig,
    *,
    horizon: int,
    classify: Classify | None = None,
    window: int = 0,
) -> Scan:
    close = frame.pivot(index="ts", columns="symbol", values="close").sort_index()
    volume = frame.pivot(index="ts", columns="symbol", values="volume").reindex_like(close)
    stamps = pd.DatetimeIndex(close.index)
    stamps = stamps.tz_localize("UTC") if stamps.tz is None else stamps
    symbols = [str(s) for s in close.columns]
    prices, sizes = close.to_numpy(np.float64), np.nan_to_num(volume.to_numpy(np.float64))
    engine = PatternEngine(config, capacity=max(8, len(symbols)))
    sids = engine.symbol_ids(symbols)
    out = Scan(bars=int(np.isfinite(prices).sum()), symbols=len(symbols))
    pending: list[tuple[int, FloatArray]] = []  # (index in out.signals, window)
    for t, stamp in enumerate(stamps):
        live = np.isfinite(prices[t]) & (prices[t] > 0)
        if not live.any():
            continue
        ts_ns = np.full(int(live.sum()), stamp.value, dtype=np.int64)
        fired = engine.on_batch(sids[live], prices[t][live], sizes[t][live], ts_ns)
        for signal in fired.to_signals() if len(fired) else []:
            j = symbols.index(signal.symbol)
            sign = 1.0 if signal.side is Side.BUY else -1.0
            end = t + horizon
            ahead = (
                sign * float(np.log(prices[end, j] / prices[t, j]))
                if end < len(stamps) and np.isfinite(prices[end, j]) and prices[end, j] > 0
                else float("nan")
            )
            out.signals.append(
                Found(signal.symbol, signal.kind.value, signal.side.value, signal.score,
                      stamp, ahead)
            )  # fmt: skip
            sid = int(sids[j])
            if classify is not None and window and engine.tick_count(sid) >= window:
                one = engine.windows(np.array([sid], dtype=np.int64), window)[0]
                pending.append((len(out.signals) - 1, one))
    if classify is not None and pending:
        probs = classify(np.stack([w for _, w in pending]))
        for (index, _), row in zip(pending, probs, strict=True):
            out.signals[index].probs = (float(row[0]), float(row[1]), float(row[2]))
    return out


def _tally(found: list[Found], key: Callable[[Found], str], label: str) -> list[dict[str, Any]]:
    groups: dict[str, list[Found]] = {}
    for f in found:
        groups.setdefault(key(f), []).append(f)
    rows = []
    for name, members in sorted(groups.items()):
        ahead = np.array([f.ahead for f in members])
        known = ahead[np.isfinite(ahead)]
        rows.append(
            {
                label: name,
                "signals": len(members),
                "buys": sum(f.side == Side.BUY for f in members),
                "with_horizon": int(known.size),
                "mean_signed_return": float(known.mean()) if known.size else None,
                "hit_rate": float((known > 0).mean()) if known.size else None,
            }
        )
    return rows
