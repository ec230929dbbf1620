"""How many shares an approved decision buys or sells for one account.

Deterministic code sizes, never the model: the council gives a target weight,
the account's `Sizing` turns it into whole shares. Everything is `Decimal`,
the volatility included (`statistics.stdev` is exact on Decimals), so the same
inputs give the same quantity on every machine and the stored `detail()`
reproduces it.

Given the account's buying power, the part of the order that opens or grows
a position is cut to the whole shares that power buys (less the sizing's
`buying_power_reserve`, room for slippage and commission): an account that
has spent most of its cash buys fewer shares, rather than sending an order the
risk check or the broker must refuse. The result says it was cut (`capped`).

When the numbers do not support an order (too little history to measure
volatility, a flat series, less than one share, less than the minimum
notional) the result has qty 0 and says why in `skipped`: no guessing, and
no order that is "roughly right".

Not here: the clock and the data. `closes` must already be point in time (at
or before the decision's as-of, raw closes, not `adj_close`); that is the
caller's job. Risk limits are `tasks.execution.risk`'s.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from typing import Self

from pydantic import BaseModel, ConfigDict, model_validator

from models.accounts import AccountConfig, Sizing, SizingMethod
from tasks.execution.numbers import plain

TRADING_DAYS = 252
VOL_QUANTUM = Decimal("0.000001")  # realised vol and scale are stored to 6 places
ZERO = Decimal(0)


class SizingResult(BaseModel):
    """The sized order, or the reason there is none.

    `qty` is whole shares, rounded down; `notional` is `qty x price`, so 0 when
    skipped. `scale` and `realised_vol` are set only by the volatility method
    (and stay set when a later step skips, so the record shows how far it got).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    qty: Decimal
    notional: Decimal
    method: SizingMethod
    scale: Decimal | None = None
    realised_vol: Decimal | None = None
    capped: str | None = None
    skipped: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.qty < 0 or self.qty != self.qty.to_integral_value():
            raise ValueError(f"qty {self.qty} is not a whole number of shares")
        if (self.skipped is None) == (self.qty == 0):
            raise ValueError("a result has a positive qty or a skipped reason, not both")
        return self

    def detail(self) -> dict[str, str]:
        """JSON-able, decimals as plain strings (no exponents); unset fields are left out."""
        out = {
            "qty": _plain(self.qty),
            "notional": _plain(self.notional),
            "method": self.method.value,
        }
        if self.scale is not None:
            out["scale"] = _plain(self.scale)
        if self.realised_vol is not None:
            out["realised_vol"] = _plain(self.realised_vol)
        if self.capped is not None:
            out["capped"] = self.capped
        if self.skipped is not None:
            out["skipped"] = self.skipped
        return out


def size_order(
    *,
    weight: Decimal,
    price: Decimal,
    equity: Decimal,
    account: AccountConfig,
    closes: Sequence[Decimal] = (),
    buying_power: Decimal | None = None,
    closable: Decimal = ZERO,
) -> SizingResult:
    """Shares for a target `weight` of `equity`, under the account's allocation and sizing.

    `closes` (oldest first) are read only by the volatility method, which uses
    the last `vol_lookback_days + 1` of them. With `buying_power`, the shares
    beyond `closable` (what the order's side would close of a position held,
    which needs no buying power) are cut to what that power buys at `price`.
    Raises ValueError on input that can only be a caller's bug: a
    non-positive price or close, negative equity or closable, a weight
    outside [0, 1].
    """
    if price <= 0:
        raise ValueError(f"price {price} must be positive")
    if equity < 0:
        raise ValueError(f"equity {equity} must not be negative")
    if not ZERO <= weight <= 1:
        raise ValueError(f"weight {weight} must be between 0 and 1")
    if closable < 0:
        raise ValueError(f"closable {closable} must not be negative")
    sizing = account.sizing
    target = equity * account.allocation * weight
    scale: Decimal | None = None
    vol: Decimal | None = None
    skipped: str | None = None
    if sizing.method is SizingMethod.VOLATILITY:
        vol, skipped = _realised_vol(closes, sizing)
        if vol is not None:
            scale = min(
                sizing.max_scale, (sizing.target_vol / vol).quantize(VOL_QUANTUM, ROUND_DOWN)
            )
            target *= scale
    qty = target // price  # the exact integer part: never a share more than the target buys
    capped: str | None = None
    if skipped is None and qty > 0 and buying_power is not None:
        qty, capped = _fit(qty, price, buying_power, closable, sizing.buying_power_reserve)
    if skipped is None and qty == 0 and capped is not None:
        skipped = capped
        capped = None
    elif skipped is None and qty == 0:
        skipped = f"target notional {_money(target)} buys no whole share at {plain(price)}"
    elif skipped is None and qty * price < sizing.min_notional:
        skipped = f"notional {_money(qty * price)} below minimum {_money(sizing.min_notional)}"
    if skipped is not None:
        qty = ZERO
    return SizingResult(
        qty=qty,
        notional=qty * price,
        method=sizing.method,
        scale=scale,
        realised_vol=vol,
        capped=capped,
        skipped=skipped,
    )


def _fit(
    qty: Decimal, price: Decimal, buying_power: Decimal, closable: Decimal, reserve: Decimal
) -> tuple[Decimal, str | None]:
    """`qty`, or fewer shares when the opening part needs more than the buying power has."""
    closing = min(qty, closable)
    opening = qty - closing
    usable = max(ZERO, buying_power) * (1 - reserve)
    fits = usable // price
    if opening <= fits:
        return qty, None
    kept = f"less {(reserve * 100).normalize():f}% reserve" if reserve else "no reserve"
    why = (
        f"buying power {_money(buying_power)} ({kept}) opens {fits:f} of {opening:f} shares "
        f"at {plain(price)}"
    )
    return closing + fits, why


def _realised_vol(closes: Sequence[Decimal], sizing: Sizing) -> tuple[Decimal | None, str | None]:
    """Annualised sample stdev of the last `vol_lookback_days` simple returns, or why not."""
    days = sizing.vol_lookback_days
    if len(closes) < days + 1:
        return None, f"volatility needs {days + 1} closes for {days} returns, got {len(closes)}"
    window = list(closes[-(days + 1) :])
    if bad := [c for c in window if c <= 0]:
        raise ValueError(f"closes must be positive, got {bad[0]}")
    returns = [now / before - 1 for before, now in pairwise(window)]
    daily = statistics.stdev(returns)
    vol = (daily * Decimal(TRADING_DAYS).sqrt()).quantize(VOL_QUANTUM, ROUND_HALF_EVEN)
    if vol == 0:
        return None, f"realised volatility over {days} days is {vol}: nothing to scale by"
    return vol, None


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _plain(amount: Decimal) -> str:
    return f"{amount:f}"
