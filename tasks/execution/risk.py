"""Pre-trade checks: may this order be sent for this account, now?

Every check runs, in a fixed order, even after one has failed: the stored
record (`checks_record`) then shows the whole picture, and an operator fixing
one limit learns about the next in the same look. Each detail states the
numbers it compared, on a pass as on a fail.

Orders that only reduce a position (sell part of a long, buy back part of a
short) need no buying power and are not held to the position limit: blocking
them would trap an account in the very exposure the limits are there to cut.
They still stop at the kill switch, the symbol lists, market hours, the open
order limit and the daily loss limit.

Pure: the caller supplies the account's state and `now`. Not here: exchange
holidays and half days (`MarketHours` knows weekdays and times only), and
fetching any of the state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Self
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.accounts import RiskLimits
from models.broker import Amount, PositiveAmount
from models.enums import Side
from models.market import Symbol
from tasks.execution.numbers import plain

ZERO = Decimal(0)
CENT = Decimal("0.01")


class ProposedOrder(BaseModel):
    """The order as sized, before any broker sees it. `price` is the reference (last) price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    side: Side
    qty: PositiveAmount
    price: PositiveAmount
    take_profit: PositiveAmount | None = None
    stop_loss: PositiveAmount | None = None
    # A lone exit price is accepted here so the `bracket_prices` check can refuse it on record.
    legs: int = Field(0, description="Bracket exit legs: 2 with take_profit and stop_loss, else 0.")

    @model_validator(mode="after")
    def _check_legs(self) -> Self:
        both = self.take_profit is not None and self.stop_loss is not None
        if self.legs not in (0, 2) or (self.legs == 2) != both:
            raise ValueError(f"legs={self.legs}: 2 with take_profit and stop_loss, else 0")
        return self

    @property
    def signed_qty(self) -> Decimal:
        return self.qty if self.side is Side.BUY else -self.qty


class AccountState(BaseModel):
    """What the checks need to know about the account, as of the check.

    `positions` are signed quantities (short is negative), absent means flat.
    `open_orders` counts bracket legs. `halted` is the kill switch's reason when
    trading is halted for this account or for all. `last_prices` is carried for
    the record; the checks value the order and position at the order's price.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    equity: Amount
    cash: Amount
    buying_power: Amount
    day_start_equity: Amount | None = None
    positions: dict[Symbol, Amount] = Field(default_factory=dict)
    last_prices: dict[Symbol, PositiveAmount] = Field(default_factory=dict)
    open_orders: int = Field(0, ge=0)
    halted: str | None = None


class CheckResult(BaseModel):
    """One check's verdict, with the numbers behind it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    passed: bool
    detail: str


def pre_trade_checks(
    order: ProposedOrder, state: AccountState, limits: RiskLimits, now: datetime
) -> list[CheckResult]:
    """Run every check in `CHECKS` order; `now` must be timezone-aware (UTC by convention)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now {now} must be timezone-aware")
    before = state.positions.get(order.symbol, ZERO)
    case = _Case(order, state, limits, now, before, before + order.signed_qty)
    results = []
    for name, check in _CHECKS.items():
        passed, detail = check(case)
        results.append(CheckResult(name=name, passed=passed, detail=detail))
    return results


def rejection_reason(results: Sequence[CheckResult]) -> str | None:
    """The failed checks' details joined with "; ", or None when everything passed."""
    failed = [r.detail for r in results if not r.passed]
    return "; ".join(failed) if failed else None


def checks_record(results: Sequence[CheckResult]) -> dict[str, Any]:
    """{name: {"passed", "detail"}} in check order, for a JSON column."""
    return {r.name: {"passed": r.passed, "detail": r.detail} for r in results}


# --- the checks: each returns (passed, detail) -------------------------------


@dataclass(frozen=True, slots=True)
class _Case:
    o: ProposedOrder
    s: AccountState
    lim: RiskLimits
    now: datetime
    before: Decimal  # the symbol's signed position, before and after the order
    after: Decimal


_Verdict = tuple[bool, str]


def _kill_switch(c: _Case) -> _Verdict:
    if c.s.halted is not None:
        return False, f"trading halted: {c.s.halted}"
    return True, "trading not halted"


def _symbol_allowed(c: _Case) -> _Verdict:
    symbol, allow = c.o.symbol, c.lim.allow_symbols
    if symbol in c.lim.deny_symbols:
        return False, f"{symbol} is on the deny list"
    if allow is not None and symbol not in allow:
        return False, f"{symbol} is not on the allow list ({len(allow)} symbols)"
    listed = "on the allow list" if allow is not None else "no allow list"
    return True, f"{symbol} allowed ({listed}, not denied)"


def _market_hours(c: _Case) -> _Verdict:
    hours = c.lim.market_hours
    if hours is None:
        return True, "no market hours configured"
    local = c.now.astimezone(ZoneInfo(hours.timezone))
    when = f"{local:%a %Y-%m-%d %H:%M} {hours.timezone}"
    window = f"{hours.open:%H:%M}-{hours.close:%H:%M}"
    if local.weekday() not in hours.weekdays:
        return False, f"{when}: not a trading day"
    if not hours.open <= local.time() < hours.close:
        return False, f"{when} is outside {window}"
    return True, f"{when} is within {window}"


def _short_allowed(c: _Case) -> _Verdict:
    position = f"position {plain(c.before)} -> {plain(c.after)}"
    moves = f"{c.o.side} {plain(c.o.qty)} {c.o.symbol}: {position}"
    if c.o.side is Side.BUY or c.after >= 0:
        return True, f"{moves}, not short"
    if c.lim.allow_short:
        return True, f"{moves}, short allowed"
    return False, f"{moves}: shorting not allowed"


def _bracket_prices(c: _Case) -> _Verdict:
    tp, sl, px = c.o.take_profit, c.o.stop_loss, c.o.price
    if tp is None and sl is None:
        return True, "no bracket"
    buy = c.o.side is Side.BUY
    problems = []
    if tp is not None and not (tp > px if buy else tp < px):
        crossed = "above" if buy else "below"
        problems.append(
            f"take_profit {plain(tp)} vs price {plain(px)}: the market is at or {crossed} it"
        )
    if sl is not None and not (sl < px if buy else sl > px):
        crossed = "below" if buy else "above"
        problems.append(
            f"stop_loss {plain(sl)} vs price {plain(px)}: the market is at or {crossed} it"
        )
    if tp is None or sl is None:
        problems.append(f"only {'stop_loss' if tp is None else 'take_profit'} given: needs both")
    low, high = ("stop_loss", "take_profit")[:: 1 if buy else -1]
    rule = f"{c.o.side} bracket needs {low} < price < {high}"
    if problems or tp is None or sl is None:  # a missing price is one of the problems
        return False, f"{rule}: " + "; ".join(problems)
    return True, f"{rule}: {plain(sl if buy else tp)} < {plain(px)} < {plain(tp if buy else sl)}"


def _max_order_notional(c: _Case) -> _Verdict:
    notional, limit = c.o.qty * c.o.price, c.lim.max_order_notional
    if limit is None:
        return True, f"order notional {_money(notional)}, no limit"
    if notional > limit:
        return False, f"order notional {_money(notional)} > limit {_money(limit)}"
    return True, f"order notional {_money(notional)} <= limit {_money(limit)}"


def _max_position_pct(c: _Case) -> _Verdict:
    value, pct, equity = abs(c.after) * c.o.price, c.lim.max_position_pct, c.s.equity
    what = (
        f"{c.o.symbol} position after order {plain(c.after)} x {plain(c.o.price)} = {_money(value)}"
    )
    if pct is None:
        return True, f"{what}, no limit"
    if _reduces(c.before, c.after):
        return True, f"{what}, reduced from {plain(c.before)}: not limited"
    if equity <= 0:
        return False, f"{what}, but equity {_money(equity)} is not positive"
    cap = f"{_money(pct * equity)} ({(pct * 100).normalize():f}% of equity {_money(equity)})"
    if value > pct * equity:
        return False, f"{what} > limit {cap}"
    return True, f"{what} <= limit {cap}"


def _buying_power(c: _Case) -> _Verdict:
    held = c.before if c.o.side is Side.SELL else -c.before  # what this side can close
    closing = min(c.o.qty, max(ZERO, held))
    opening = c.o.qty - closing
    if opening == 0:
        return True, f"closes {plain(closing)} of position {plain(c.before)}: needs no buying power"
    cost, power = opening * c.o.price, c.s.buying_power
    need = f"opens {plain(opening)} x {plain(c.o.price)} = {_money(cost)}"
    if cost > power:
        return False, f"{need} > buying power {_money(power)}"
    return True, f"{need} <= buying power {_money(power)}"


def _max_open_orders(c: _Case) -> _Verdict:
    total, limit = c.s.open_orders + 1 + c.o.legs, c.lim.max_open_orders
    count = f"open orders {c.s.open_orders} + 1 + {c.o.legs} legs = {total}"
    if limit is None:
        return True, f"{count}, no limit"
    if total > limit:
        return False, f"{count} > limit {limit}"
    return True, f"{count} <= limit {limit}"


def _daily_loss(c: _Case) -> _Verdict:
    limit, start, equity = c.lim.max_daily_loss, c.s.day_start_equity, c.s.equity
    if limit is None:
        return True, "no daily loss limit"
    if start is None:
        return True, "no day-start equity known yet"
    loss = start - equity
    numbers = f"loss today {_money(loss)} (from {_money(start)} to {_money(equity)})"
    if loss >= limit:
        return False, f"{numbers} >= limit {_money(limit)}"
    return True, f"{numbers} < limit {_money(limit)}"


_CHECKS: dict[str, Callable[[_Case], _Verdict]] = {
    "kill_switch": _kill_switch,
    "symbol_allowed": _symbol_allowed,
    "market_hours": _market_hours,
    "short_allowed": _short_allowed,
    "bracket_prices": _bracket_prices,
    "max_order_notional": _max_order_notional,
    "max_position_pct": _max_position_pct,
    "buying_power": _buying_power,
    "max_open_orders": _max_open_orders,
    "daily_loss": _daily_loss,
}
CHECKS: tuple[str, ...] = tuple(_CHECKS)
"""Every check's name, in the order they run and are recorded."""


def _reduces(before: Decimal, after: Decimal) -> bool:
    """Same side (or flat) and smaller: a trim or close, not a flip or a new position."""
    return abs(after) < abs(before) and (after == 0 or (after > 0) == (before > 0))


def _money(amount: Decimal) -> str:
    """Two decimals with thousands separators; more decimals only if the amount has them."""
    if amount == amount.quantize(CENT):
        return f"{amount:,.2f}"
    return f"{amount.normalize():,f}"
