"""Rows round-trip with their types intact and constraints hold, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from models.enums import BrokerKind, OrderLeg, OrderType, Side, Timeframe
from models.market import Bar, Instrument
from models.ops import LLMCall
from models.trading import Account, Order


def _account(session: Session, name: str = "paper-1") -> Account:
    session.add(Instrument(symbol="AAPL"))
    account = Account(name=name, broker=BrokerKind.PAPER)
    session.add(account)
    session.flush()
    return account


def _order(account: Account, client_order_id: str, leg: OrderLeg = OrderLeg.ENTRY) -> Order:
    return Order(
        client_order_id=client_order_id,
        account_id=account.id,
        leg=leg,
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal("10"),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("123.45670001"),
    )


def test_timestamps_come_back_aware_utc_whatever_zone_went_in(session: Session) -> None:
    session.add(Instrument(symbol="AAPL"))
    session.flush()
    berlin = timezone(timedelta(hours=1))
    ts = datetime(2020, 1, 2, 15, 30, 0, 123456, tzinfo=berlin)
    session.add(
        Bar(symbol="AAPL", timeframe=Timeframe.M1, ts=ts, open=1, high=2, low=1, close=2, volume=5)
    )
    session.flush()
    session.expunge_all()
    bar = session.scalars(select(Bar)).one()
    assert bar.ts == ts
    assert bar.ts.tzinfo is UTC
    assert bar.ts.hour == 14


def test_naive_timestamps_are_refused(session: Session) -> None:
    session.add(Instrument(symbol="AAPL"))
    session.add(
        Bar(
            symbol="AAPL",
            timeframe=Timeframe.D1,
            ts=datetime(2020, 1, 2),
            open=1,
            high=1,
            low=1,
            close=1,
            volume=0,
        )
    )
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_prices_keep_their_decimals_and_enums_their_values(session: Session) -> None:
    account = _account(session)
    session.add(_order(account, "c-1"))
    session.flush()
    session.expunge_all()
    order = session.scalars(select(Order)).one()
    assert order.limit_price == Decimal("123.45670001")
    assert isinstance(order.limit_price, Decimal)
    assert order.side is Side.BUY
    raw = session.execute(text("SELECT side, order_type FROM orders")).one()
    assert tuple(raw) == ("buy", "limit")


def test_client_order_id_is_unique(session: Session) -> None:
    account = _account(session)
    session.add(_order(account, "dup", OrderLeg.ENTRY))
    session.flush()
    session.add(_order(account, "dup", OrderLeg.TAKE_PROFIT))
    with pytest.raises(IntegrityError):
        session.flush()


def test_one_order_per_intent_account_and_leg(session: Session) -> None:
    from models.trading import TradeIntent

    account = _account(session)
    intent = TradeIntent(
        idempotency_key="k1", account_id=account.id, symbol="AAPL", side=Side.BUY, qty=Decimal(1)
    )
    session.add(intent)
    session.flush()
    first, second = _order(account, "a"), _order(account, "b")
    first.intent_id = second.intent_id = intent.id
    session.add(first)
    session.flush()
    session.add(second)
    with pytest.raises(IntegrityError):
        session.flush()


def test_bars_reject_unknown_symbols(session: Session) -> None:
    session.add(
        Bar(
            symbol="NOPE",
            timeframe=Timeframe.D1,
            ts=datetime(2020, 1, 2, tzinfo=UTC),
            open=1,
            high=1,
            low=1,
            close=1,
            volume=0,
        )
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_json_columns_round_trip_nested_documents(session: Session) -> None:
    doc = {"choices": [{"message": {"content": "hi"}}], "usage": {"prompt_tokens": 3}}
    session.add(
        LLMCall(
            stage="pitch",
            model="offline",
            prompt_hash="h" * 64,
            messages=[{"role": "user", "content": "x"}],
            parsed_output=doc,
            status="ok",
        )
    )
    session.flush()
    session.expunge_all()
    call = session.scalars(select(LLMCall)).one()
    assert call.parsed_output == doc
    assert call.cost_usd == Decimal(0)


def test_invalid_enum_value_is_refused(session: Session) -> None:
    account = _account(session)
    order = _order(account, "x")
    order.side = "sideways"  # type: ignore[assignment]
    session.add(order)
    with pytest.raises(StatementError):
        session.flush()
