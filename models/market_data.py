"""Realtime market data vocabulary: ticks and price snapshots.

Prices here are floats, deliberately: this is the hot path (thousands of ticks
a second through the cache, the pattern engine and the fan-out), and a float
is exact enough for a *display and signal* price. Anything that becomes money
(orders, fills, bars in the database) is converted to Decimal at that edge.
See docs/decisions/0004-float-prices-on-the-hot-path.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True, slots=True)
class Tick:
    """One observed price. `ts` is the event time (aware UTC), not when we received it."""

    symbol: str
    price: float
    size: float
    ts: datetime


class PriceSnapshot(BaseModel):
    """The latest known state of one symbol, as streamed to dashboards."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    price: float
    prev_price: float | None
    day_open: float
    change: float
    change_pct: float
    direction: int  # +1 up, -1 down, 0 unchanged against the previous price
    ts: datetime
    version: int
