"""What the council is measured against, as orders for the same book and account.

* **Buy and hold** an equal-weight universe: every symbol bought at the first
  sitting (a 1/N weight each), never sold.
* **Momentum**: at each sitting the `top` symbols by trailing return over
  `lookback` bars (known at that close) are held at 1/top each; a symbol that
  drops out is sold at the next open, a newcomer bought. No brackets.

Both go through `simulate_book` with the council's account, so the three
share fills, costs, sizing and risk checks; their weights are capped at the
account's position limit, which would otherwise refuse a 1/N of a small
universe outright (the rest stays in cash).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np

from models.enums import Side
from tasks.backtest.panel import PricePanel
from tasks.council_backtest.book import BookOrder

MOMENTUM_LOOKBACK = 63  # about three months of trading days


def buy_and_hold_orders(
    panel: PricePanel, first: int, cap: Decimal | None = None
) -> list[BookOrder]:
    """Every symbol with a close at bar `first`, bought at 1/N of equity (at most `cap`, the
    account's position limit, so a small universe is not refused outright)."""
    held = [s for i, s in enumerate(panel.symbols) if not np.isnan(panel.close[first, i])]
    weight = _weight(len(held), cap)
    return [BookOrder(first, s, Side.BUY, f"bh-{s}", weight) for s in held]


def momentum_orders(
    panel: PricePanel,
    sittings: Sequence[int],
    top: int,
    lookback: int = MOMENTUM_LOOKBACK,
    cap: Decimal | None = None,
) -> list[BookOrder]:
    """Rebalance into the `top` best trailing returns at each sitting."""
    orders: list[BookOrder] = []
    held: dict[str, str] = {}  # symbol -> the tag of its lot
    for step, t in enumerate(sittings):
        ranked = _trailing_returns(panel, t, lookback)
        best = {s for s, _ in ranked[:top]}
        for symbol in sorted(set(held) - best):
            orders.append(
                BookOrder(t, symbol, Side.SELL, f"mom-{step}-x-{symbol}", closes=held.pop(symbol))
            )
        weight = _weight(top, cap)
        for symbol in sorted(best - set(held)):
            held[symbol] = tag = f"mom-{step}-{symbol}"
            orders.append(BookOrder(t, symbol, Side.BUY, tag, weight))
    return orders


def _trailing_returns(panel: PricePanel, t: int, lookback: int) -> list[tuple[str, float]]:
    """(symbol, close[t] / close[t - lookback] - 1), best first; symbols without both skipped."""
    if t < lookback:
        return []
    now, then = panel.close[t], panel.close[t - lookback]
    out = [
        (s, float(now[i] / then[i] - 1.0))
        for i, s in enumerate(panel.symbols)
        if np.isfinite(now[i]) and np.isfinite(then[i]) and then[i] > 0
    ]
    return sorted(out, key=lambda pair: (-pair[1], pair[0]))


def _weight(n: int, cap: Decimal | None) -> Decimal:
    """1/n to six places, rounded down so the weights never sum past 1; at most `cap`."""
    if n <= 0:
        return Decimal(0)
    weight = (Decimal(1) / n).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
    return min(weight, cap) if cap is not None else weight
