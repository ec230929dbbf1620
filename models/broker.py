"""What crosses the broker boundary: order requests, and orders, fills, positions and accounts.

Every amount is a `Decimal`; a `float` is refused on input (docs/decisions/0004:
the OMS converts and quantises before anything reaches a broker). Times are
timezone-aware UTC. These are frozen values: a broker hands out a fresh
`BrokerOrder` each time its state changes.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Self

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from models.enums import OrderLeg, OrderStatus, OrderType, Side, TimeInForce
from models.market import Symbol


def _refuse_float(value: object) -> object:
    if isinstance(value, float):
        raise ValueError(f"{value!r} is a float: broker amounts are Decimal (or a decimal string)")
    return value


Amount = Annotated[Decimal, BeforeValidator(_refuse_float)]
"""A price, quantity or sum of money: Decimal or a decimal string, never a float."""

PositiveAmount = Annotated[Decimal, BeforeValidator(_refuse_float), Field(gt=0)]

OPEN_STATUSES = frozenset(
    {OrderStatus.NEW, OrderStatus.SUBMITTED, OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED}
)
"""Statuses of an order that may still fill or be canceled."""

SUPPORTED_TYPES = frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP})
SUPPORTED_TIME_IN_FORCE = frozenset({TimeInForce.DAY, TimeInForce.GTC})


class OrderRequest(BaseModel):
    """An order the OMS asks a broker to place; with `take_profit` and `stop_loss`, a bracket.

    `client_order_id` is ours and deterministic (the exactly-once key): a broker
    refuses a second request carrying it. Prices are as the OMS quantised them.
    Bracket exits must lie on the right sides of the entry's own price (the
    limit or the stop); for a market entry only their order is checked here,
    the OMS checks them against the market.
    """

    model_config = ConfigDict(frozen=True)

    client_order_id: str = Field(min_length=1, max_length=48)
    symbol: Symbol
    side: Side
    qty: PositiveAmount  # any positive amount; whole shares for equities are the OMS's job
    type: OrderType = OrderType.MARKET
    limit_price: PositiveAmount | None = None
    stop_price: PositiveAmount | None = None
    time_in_force: TimeInForce = TimeInForce.DAY
    take_profit: PositiveAmount | None = None  # limit price of the exit that takes the profit
    stop_loss: PositiveAmount | None = None  # stop price of the exit that cuts the loss

    @property
    def is_bracket(self) -> bool:
        return self.take_profit is not None

    @model_validator(mode="after")
    def _check_prices(self) -> Self:
        if self.type not in SUPPORTED_TYPES:
            raise ValueError(f"order type {self.type} is not supported (market, limit, stop)")
        if self.time_in_force not in SUPPORTED_TIME_IN_FORCE:
            raise ValueError(f"time in force {self.time_in_force} is not supported (day, gtc)")
        wants_limit = self.type is OrderType.LIMIT
        wants_stop = self.type is OrderType.STOP
        if wants_limit != (self.limit_price is not None):
            raise ValueError(
                f"a {self.type} order {'needs' if wants_limit else 'takes no'} limit_price"
            )
        if wants_stop != (self.stop_price is not None):
            raise ValueError(
                f"a {self.type} order {'needs' if wants_stop else 'takes no'} stop_price"
            )
        if (self.take_profit is None) != (self.stop_loss is None):
            raise ValueError("a bracket needs both take_profit and stop_loss, or neither")
        if self.take_profit is not None and self.stop_loss is not None:
            _check_bracket(
                self.side, self.limit_price or self.stop_price, self.take_profit, self.stop_loss
            )
        return self


class BrokerOrder(BaseModel):
    """An order as the broker knows it. A bracket is its entry with the two exits in `legs`.

    `order_id` is the broker's id, `client_order_id` ours (a leg's is derived
    from its parent's). `avg_fill_price` is None until something filled.
    """

    model_config = ConfigDict(frozen=True)

    order_id: str
    client_order_id: str
    symbol: Symbol
    side: Side
    qty: PositiveAmount
    type: OrderType
    time_in_force: TimeInForce
    limit_price: Amount | None = None
    stop_price: Amount | None = None
    status: OrderStatus
    filled_qty: Amount = Decimal(0)
    avg_fill_price: Amount | None = None
    submitted_at: AwareDatetime
    leg: OrderLeg = OrderLeg.ENTRY
    legs: list[BrokerOrder] = Field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """May still fill or be canceled."""
        return self.status in OPEN_STATUSES


class BrokerFill(BaseModel):
    """One execution. `price` is this fill's price, not an average; `commission` is on top."""

    model_config = ConfigDict(frozen=True)

    fill_id: str
    order_id: str
    client_order_id: str
    symbol: Symbol
    side: Side
    qty: PositiveAmount
    price: PositiveAmount
    commission: Amount = Decimal(0)
    ts: AwareDatetime


class BrokerPosition(BaseModel):
    """A holding: `qty` is signed (negative: short); `avg_cost` per share, without commission."""

    model_config = ConfigDict(frozen=True)

    symbol: Symbol
    qty: Amount
    avg_cost: Amount


class BrokerAccount(BaseModel):
    """Cash, equity (cash plus positions at their last price) and what a new order may still use."""

    model_config = ConfigDict(frozen=True)

    cash: Amount
    equity: Amount
    buying_power: Amount


def _check_bracket(
    side: Side, entry: Decimal | None, take_profit: Decimal, stop_loss: Decimal
) -> None:
    """Buy: stop_loss < entry < take_profit; sell: the mirror. No entry price: just the two."""
    low, high = (stop_loss, take_profit) if side is Side.BUY else (take_profit, stop_loss)
    names = ("stop_loss", "take_profit") if side is Side.BUY else ("take_profit", "stop_loss")
    if entry is None:
        if not low < high:
            raise ValueError(f"{side} bracket: {names[0]} {low} must be below {names[1]} {high}")
    elif not low < entry < high:
        raise ValueError(
            f"{side} bracket: need {names[0]} {low} < entry {entry} < {names[1]} {high}"
        )
