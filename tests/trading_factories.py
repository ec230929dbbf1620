"""Ledger rows with defaults (accounts, decisions, intents, orders, fills, trades, positions,
snapshots), so a test of a trading read states only what it is about.

Each takes an open session and flushes, so ids are set; the caller commits
(`with unit_of_work(api.sessions) as session:`). Symbols must be instruments:
the API test database holds the sample's 30 (AAPL, MSFT, ...).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db.queries.accounts import ensure_account
from models.accounts import AccountConfig
from models.council import CouncilDecision, CouncilRun
from models.enums import (
    DecisionAction,
    IntentStatus,
    OrderLeg,
    OrderStatus,
    OrderType,
    Side,
)
from models.trading import Fill, Order, PortfolioSnapshot, Position, Trade, TradeIntent

T0 = datetime(2020, 1, 6, 15, 0, tzinfo=UTC)


def at(day: int, hour: int = 15) -> datetime:
    """An instant in January 2020 (the sample bars end on the 10th)."""
    return datetime(2020, 1, day, hour, tzinfo=UTC)


def make_account(session: Session, name: str = "paper") -> int:
    return ensure_account(session, AccountConfig(name=name)).id


def make_decision(session: Session, symbol: str = "AAPL") -> int:
    run = CouncilRun(as_of=T0)
    session.add(run)
    session.flush()
    decision = CouncilDecision(
        run_id=run.id,
        symbol=symbol,
        action=DecisionAction.BUY,
        target_weight=Decimal("0.1"),
        conviction=Decimal("0.6"),
        rationale="test",
    )
    session.add(decision)
    session.flush()
    return decision.id


def make_intent(
    session: Session,
    account_id: int,
    *,
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    qty: Decimal | int = 10,
    status: IntentStatus = IntentStatus.PENDING_APPROVAL,
    decision_id: int | None = None,
    key: str | None = None,
    risk_checks: dict[str, Any] | None = None,
    created_at: datetime = T0,
) -> TradeIntent:
    intent = TradeIntent(
        idempotency_key=key or f"test-{symbol}-{account_id}-{created_at:%Y%m%d%H%M%S%f}",
        decision_id=decision_id,
        account_id=account_id,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        status=status,
        risk_checks=risk_checks or {"max_order_notional": {"passed": True, "detail": "ok"}},
        created_at=created_at,
    )
    session.add(intent)
    session.flush()
    return intent


def make_order(
    session: Session,
    account_id: int,
    *,
    symbol: str = "AAPL",
    side: Side = Side.BUY,
    qty: Decimal | int = 10,
    status: OrderStatus = OrderStatus.FILLED,
    intent_id: int | None = None,
    parent_id: int | None = None,
    leg: OrderLeg = OrderLeg.ENTRY,
    order_type: OrderType = OrderType.MARKET,
    limit_price: Decimal | None = None,
    reject_reason: str | None = None,
    created_at: datetime = T0,
) -> Order:
    n = session.info["test_orders"] = session.info.get("test_orders", 0) + 1
    order = Order(
        client_order_id=f"test-{account_id}-{n}-{created_at:%Y%m%d%H%M%S}",
        intent_id=intent_id,
        account_id=account_id,
        parent_id=parent_id,
        leg=leg,
        symbol=symbol,
        side=side,
        qty=Decimal(qty),
        order_type=order_type,
        limit_price=limit_price,
        status=status,
        reject_reason=reject_reason,
        created_at=created_at,
    )
    session.add(order)
    session.flush()
    return order


def make_fill(
    session: Session,
    order: Order,
    *,
    qty: Decimal | int | None = None,
    price: Decimal | str = "300",
    ts: datetime = T0,
) -> Fill:
    fill = Fill(
        order_id=order.id,
        broker_fill_id=f"fill-{order.id}-{ts:%Y%m%d%H%M%S}",
        qty=Decimal(qty) if qty is not None else order.qty,
        price=Decimal(price),
        ts=ts,
    )
    session.add(fill)
    session.flush()
    return fill


def make_trade(
    session: Session,
    account_id: int,
    *,
    symbol: str = "AAPL",
    qty: Decimal | int = 10,
    entry_price: Decimal | str = "300",
    entry_at: datetime = T0,
    exit_price: Decimal | str | None = None,
    exit_at: datetime | None = None,
) -> Trade:
    entry = Decimal(entry_price)
    exit_ = Decimal(exit_price) if exit_price is not None else None
    trade = Trade(
        account_id=account_id,
        symbol=symbol,
        side=Side.BUY,
        qty=Decimal(qty),
        entry_price=entry,
        entry_at=entry_at,
        exit_price=exit_,
        exit_at=exit_at,
        realized_pnl=Decimal(qty) * (exit_ - entry) if exit_ is not None else None,
    )
    session.add(trade)
    session.flush()
    return trade


def make_position(
    session: Session,
    account_id: int,
    *,
    symbol: str = "AAPL",
    qty: Decimal | int = 10,
    avg_price: Decimal | str = "300",
    realized_pnl: Decimal | str = "0",
) -> Position:
    position = Position(
        account_id=account_id,
        symbol=symbol,
        qty=Decimal(qty),
        avg_price=Decimal(avg_price),
        realized_pnl=Decimal(realized_pnl),
    )
    session.add(position)
    session.flush()
    return position


def make_snapshot(
    session: Session,
    account_id: int,
    *,
    ts: datetime = T0,
    cash: Decimal | str = "97000",
    positions_value: Decimal | str = "3000",
    equity: Decimal | str | None = None,
    buying_power: Decimal | str = "97000",
) -> PortfolioSnapshot:
    total = Decimal(cash) + Decimal(positions_value)
    snapshot = PortfolioSnapshot(
        account_id=account_id,
        ts=ts,
        cash=Decimal(cash),
        positions_value=Decimal(positions_value),
        equity=Decimal(equity) if equity is not None else total,
        buying_power=Decimal(buying_power),
    )
    session.add(snapshot)
    session.flush()
    return snapshot
