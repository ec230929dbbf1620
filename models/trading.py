"""Accounts, intents, orders, fills, round-trip trades, positions and snapshots.

Exactly-once lives here as constraints, not as hopes: `client_order_id` is
unique, an intent has at most one order per account and bracket leg, and a
broker fill is recorded once per order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MONEY, PRICE, QTY, Base, BigId, CreatedMixin, IdMixin, utcnow
from models.enums import (
    BrokerKind,
    IntentStatus,
    OrderLeg,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)


class Account(IdMixin, CreatedMixin, Base):
    """A broker account. Credentials stay in settings, never in the database."""

    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    broker: Mapped[BrokerKind]
    is_live: Mapped[bool] = mapped_column(default=False)
    base_currency: Mapped[str] = mapped_column(String(3), default="USD")
    max_position_notional: Mapped[Decimal | None] = mapped_column(MONEY)
    max_order_notional: Mapped[Decimal | None] = mapped_column(MONEY)
    max_daily_loss: Mapped[Decimal | None] = mapped_column(MONEY)


class TradeIntent(IdMixin, CreatedMixin, Base):
    """A sized, approved-or-not wish to trade: the last step before an order exists."""

    __tablename__ = "trade_intents"

    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    decision_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("council_decisions.id"))
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    side: Mapped[Side]
    qty: Mapped[Decimal] = mapped_column(QTY)
    order_type: Mapped[OrderType] = mapped_column(default=OrderType.MARKET)
    limit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    take_profit: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_loss: Mapped[Decimal | None] = mapped_column(PRICE)
    time_in_force: Mapped[TimeInForce] = mapped_column(default=TimeInForce.DAY)
    status: Mapped[IntentStatus] = mapped_column(default=IntentStatus.PENDING_APPROVAL)
    risk_checks: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reject_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Order(IdMixin, CreatedMixin, Base):
    """An order as sent to a broker; a bracket is an entry with two child legs."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("intent_id", "account_id", "leg"),
        UniqueConstraint("account_id", "broker_order_id"),
    )

    client_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    broker_order_id: Mapped[str | None] = mapped_column(String(64))
    intent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("trade_intents.id"))
    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    parent_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"))
    leg: Mapped[OrderLeg] = mapped_column(default=OrderLeg.ENTRY)
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    side: Mapped[Side]
    qty: Mapped[Decimal] = mapped_column(QTY)
    order_type: Mapped[OrderType]
    limit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_price: Mapped[Decimal | None] = mapped_column(PRICE)
    time_in_force: Mapped[TimeInForce] = mapped_column(default=TimeInForce.DAY)
    status: Mapped[OrderStatus] = mapped_column(default=OrderStatus.NEW)
    filled_qty: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    avg_fill_price: Mapped[Decimal | None] = mapped_column(PRICE)
    submitted_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)  # the broker's words, or ours
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Fill(IdMixin, CreatedMixin, Base):
    """One execution. `price` is this fill's price, not the order's average."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("order_id", "broker_fill_id"),)

    order_id: Mapped[int] = mapped_column(BigId, ForeignKey("orders.id", ondelete="CASCADE"))
    broker_fill_id: Mapped[str] = mapped_column(String(64))
    qty: Mapped[Decimal] = mapped_column(QTY)
    price: Mapped[Decimal] = mapped_column(PRICE)
    fee: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    ts: Mapped[datetime]


class Trade(IdMixin, CreatedMixin, Base):
    """A round trip: an entry and the exit that closed it, with realised P&L after fees."""

    __tablename__ = "trades"

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    side: Mapped[Side]
    qty: Mapped[Decimal] = mapped_column(QTY)
    entry_price: Mapped[Decimal] = mapped_column(PRICE)
    exit_price: Mapped[Decimal | None] = mapped_column(PRICE)
    entry_at: Mapped[datetime]
    exit_at: Mapped[datetime | None]
    realized_pnl: Mapped[Decimal | None] = mapped_column(MONEY)
    fees: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    entry_order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"))
    exit_order_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("orders.id"))


class Position(IdMixin, Base):
    """Current holding of one symbol in one account (negative qty is short)."""

    __tablename__ = "positions"
    __table_args__ = (UniqueConstraint("account_id", "symbol"),)

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    qty: Mapped[Decimal] = mapped_column(QTY)
    avg_price: Mapped[Decimal] = mapped_column(PRICE)
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PortfolioSnapshot(IdMixin, Base):
    """An account's value at an instant; the equity curve is a series of these."""

    __tablename__ = "portfolio_snapshots"
    __table_args__ = (UniqueConstraint("account_id", "ts"),)

    account_id: Mapped[int] = mapped_column(BigId, ForeignKey("accounts.id"))
    ts: Mapped[datetime]
    cash: Mapped[Decimal] = mapped_column(MONEY)
    positions_value: Mapped[Decimal] = mapped_column(MONEY)
    equity: Mapped[Decimal] = mapped_column(MONEY)
    buying_power: Mapped[Decimal] = mapped_column(MONEY)


class TradingHalt(IdMixin, Base):
    """One flip of the kill switch; the newest row for a scope is its state.

    `account` None is every account. An append-only log, so who halted trading,
    when and why stays on record after it resumes.
    """

    __tablename__ = "trading_halts"
    __table_args__ = (Index("ix_trading_halts_account_ts", "account", "ts"),)

    account: Mapped[str | None] = mapped_column(String(100))
    halted: Mapped[bool]
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100))
    ts: Mapped[datetime] = mapped_column(default=utcnow)
