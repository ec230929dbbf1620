"""What the trading, accounts, portfolio and kill-switch routes answer.

Money, prices and quantities are `Decimal`, serialised as JSON strings so no
digit is lost (as stored: 8 decimal places). Live quotes in the price cache
are floats (docs/decisions/0004); they become `Decimal` only where they are
multiplied into money, a position's mark. No schema here carries a broker key.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ReadSession, SettingsDep
from api.pagination import Page, PageParams
from db.queries.trading import (
    FillLine,
    IntentLine,
    OrderLine,
    Paging,
    RefusalLine,
    TradeLine,
    require_account,
)
from models.enums import IntentStatus, OrderLeg, OrderStatus, OrderType, Side, TimeInForce
from models.market import Symbol
from models.trading import PortfolioSnapshot, TradingHalt

M = TypeVar("M", bound=BaseModel)


def account_filter(
    session: ReadSession,
    settings: SettingsDep,
    account: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="One account by name (default: all)."),
    ] = None,
) -> str | None:
    """The `account` query parameter, checked: 404 unless it is configured (or has books)."""
    if account is not None:
        require_account(session, [a.name for a in settings.accounts], account)
    return account


AccountFilter = Annotated[str | None, Depends(account_filter)]
SymbolFilter = Annotated[Symbol | None, Query(description="One ticker; case does not matter.")]


def paging(page: PageParams) -> Paging:
    """The query's view of a page: one row more than the page, to tell if there are more."""
    return Paging(page.fetch, page.offset, page.since, page.until)


class PriceSource(StrEnum):
    """Where a position's price came from."""

    LIVE = "live"  # the realtime price cache (the configured market data source)
    CLOSE = "close"  # the newest stored daily close, the source having no price


class OrderOut(BaseModel):
    """An order as booked; a bracket's exits are rows of their own pointing at their entry."""

    id: int
    account: str
    client_order_id: str = Field(description="Ours, deterministic: the exactly-once key.")
    broker_order_id: str | None
    intent_id: int | None
    decision_id: int | None = Field(
        description="The council decision behind the order's intent; null for manual trades."
    )
    parent_id: int | None = Field(description="A bracket exit's entry order.")
    leg: OrderLeg
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce
    status: OrderStatus
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    reject_reason: str | None = Field(description="The broker's words, or our check's.")
    submitted_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, line: OrderLine) -> OrderOut:
        return _from_row(cls, line.order, account=line.account, decision_id=line.decision_id)


class OrdersInclude(StrEnum):
    """What `GET /api/orders?include=` may add beside the orders."""

    REFUSED = "refused"  # trade intents a pre-trade check or the broker refused


class RefusedIntentOut(BaseModel):
    """A trade intent that was refused: by a pre-trade check (`risk_rejected`, never sent,
    so no order exists) or by the broker (`failed`, its entry order `rejected`)."""

    id: int
    account: str
    symbol: str
    side: Side
    qty: Decimal
    status: IntentStatus
    checks: list[str] = Field(
        description="What refused it: the failed checks' names (sorted; `reason` keeps the "
        "order they ran in), `sizing` (sized to nothing) or `broker`; empty if none is named.",
        examples=[["max_order_notional"]],
    )
    reason: str | None = Field(
        description="Why, with the numbers compared; a broker's refusal in its own words.",
        examples=["order notional 31,010.00 > limit 10,000.00"],
    )
    risk_checks: dict[str, Any] = Field(
        description="The record of every check (`checks`), the sizing and earlier verdicts."
    )
    decision_id: int | None
    idempotency_key: str
    created_at: datetime
    refused_at: datetime = Field(description="The intent's last change: its refusal.")

    @classmethod
    def of(cls, line: RefusalLine) -> RefusedIntentOut:
        return _from_row(
            cls,
            line.intent,
            account=line.account,
            checks=line.checks,
            reason=line.reason,
            refused_at=line.intent.updated_at,
        )


class OrdersPage(Page[OrderOut]):
    """A page of orders; with `include=refused`, a page of refused intents beside them."""

    refused: Page[RefusedIntentOut] | None = Field(
        None,
        description="Only with `include=refused` (else null): refused intents newest first, "
        "paged with the same limit, offset, since and until (on their refusal).",
    )


class FillOut(BaseModel):
    """One execution; `price` is this fill's, not the order's average."""

    id: int
    order_id: int
    broker_fill_id: str
    account: str
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime

    @classmethod
    def of(cls, line: FillLine) -> FillOut:
        o = line.order
        return _from_row(cls, line.fill, account=line.account, symbol=o.symbol, side=o.side)


class TradeOut(BaseModel):
    """A round trip: an entry and, once closed, its exit and realised P&L after fees."""

    id: int
    account: str
    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal | None
    entry_at: datetime
    exit_at: datetime | None
    realized_pnl: Decimal | None
    fees: Decimal
    entry_order_id: int | None
    exit_order_id: int | None
    open: bool = Field(description="No exit yet.")

    @classmethod
    def of(cls, line: TradeLine) -> TradeOut:
        return _from_row(cls, line.trade, account=line.account, open=line.trade.exit_at is None)


class PendingIntentOut(BaseModel):
    """A checked trade waiting for a trader's approval (`POST /api/trades/execute`).

    It came from a council decision (`decision_id`) or from a person, in chat or
    by approving a pitch: then `idempotency_key` names the request it came from.
    `risk_checks` is every pre-trade check's result when it was asked for; the
    checks run again before it is sent.
    """

    id: int
    account: str
    symbol: str
    side: Side
    qty: Decimal
    order_type: OrderType
    limit_price: Decimal | None
    take_profit: Decimal | None
    stop_loss: Decimal | None
    time_in_force: TimeInForce
    status: IntentStatus
    decision_id: int | None
    idempotency_key: str
    risk_checks: dict[str, Any] = Field(
        examples=[{"max_position": {"passed": True, "detail": "position 12% of equity"}}]
    )
    created_at: datetime

    @classmethod
    def of(cls, line: IntentLine) -> PendingIntentOut:
        return _from_row(cls, line.intent, account=line.account)


class PositionOut(BaseModel):
    """A holding from our books (negative qty: short), marked to a price.

    `unrealized_pnl` is qty x (price - avg_price); price, market value and
    unrealised P&L are null when neither the price cache nor the stored bars
    have a price for the symbol.
    """

    account: str
    symbol: str
    qty: Decimal
    avg_price: Decimal
    price: Decimal | None
    price_source: PriceSource | None
    price_ts: datetime | None = Field(description="When the price was observed (a close: known).")
    market_value: Decimal | None
    unrealized_pnl: Decimal | None
    realized_pnl: Decimal
    updated_at: datetime


class PortfolioOut(BaseModel):
    """Cash plus positions at live (else last close) prices, for one account or all summed."""

    account: str | None = Field(description="null: every account summed.")
    cash: Decimal = Field(description="From the latest snapshot of each account (0 if none).")
    cash_as_of: datetime | None = Field(
        description="The oldest of the snapshots the cash is from; null: no snapshot yet."
    )
    positions: list[PositionOut]
    positions_value: Decimal = Field(description="Market value of the priced positions.")
    unrealized_pnl: Decimal
    realized_pnl: Decimal = Field(description="Of the positions held, from our books.")
    total_value: Decimal = Field(description="cash + positions_value.")
    unpriced: list[str] = Field(description="Held symbols with no price: left out of the sums.")


class SnapshotOut(BaseModel):
    """An account's value at an instant, as the execution stage booked it."""

    account: str
    ts: datetime
    cash: Decimal
    positions_value: Decimal
    equity: Decimal
    buying_power: Decimal

    @classmethod
    def of(cls, snapshot: PortfolioSnapshot, account: str) -> SnapshotOut:
        return _from_row(cls, snapshot, account=account)


class HaltOut(BaseModel):
    """One flip of the kill switch; the newest of a scope is its state."""

    model_config = ConfigDict(from_attributes=True)

    account: str | None = Field(description="null: every account.")
    halted: bool
    reason: str | None
    actor: str
    ts: datetime


class AccountTradingOut(BaseModel):
    """Whether one account may trade; `halt` is the switch that stops it (all accounts first)."""

    account: str
    halted: bool
    halt: HaltOut | None

    @classmethod
    def of(
        cls, account: str, every: TradingHalt | None, own: TradingHalt | None
    ) -> AccountTradingOut:
        """`every` and `own` are the newest rows of the global and the account's scope."""
        stopping = next((row for row in (every, own) if row is not None and row.halted), None)
        halt = HaltOut.model_validate(stopping) if stopping is not None else None
        return cls(account=account, halted=halt is not None, halt=halt)


def _from_row(model: type[M], row: object, **extra: object) -> M:
    """`model` from an ORM row's attributes of the same names, and `extra` for the rest."""
    values = {name: getattr(row, name) for name in model.model_fields if name not in extra}
    return model.model_validate({**values, **extra})
