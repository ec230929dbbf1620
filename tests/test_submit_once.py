"""An intent's order reaches the broker once: on retry, after a crash, after a lost answer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.instruments import ensure_instruments
from models.broker import OrderRequest
from models.enums import BrokerKind, OrderLeg, OrderStatus, OrderType, Side
from models.trading import Account, Order, TradeIntent
from services.brokers import BrokerUnavailableError
from services.brokers.alpaca import AlpacaBroker
from services.brokers.paper import PaperBroker
from tasks.execution.submit import client_order_id, record_order, submit_once
from tests.fake_alpaca_rest import AcceptThenTimeout, fake_alpaca_rest, trading_client

pytestmark = pytest.mark.anyio


def _intent(sessions: sessionmaker[Session]) -> int:
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL"])
        account = Account(name="main", broker=BrokerKind.PAPER)
        session.add(account)
        session.flush()
        intent = TradeIntent(
            idempotency_key="decision-7-aapl",
            account_id=account.id,
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(3),
            order_type=OrderType.LIMIT,
            limit_price=Decimal("150"),
            take_profit=Decimal("160"),
            stop_loss=Decimal("145"),
        )
        session.add(intent)
        session.flush()
        return intent.id


def _orders(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Order)) or 0)


async def test_submitting_twice_sends_one_order(sessions: sessionmaker[Session]) -> None:
    broker = PaperBroker(Decimal(10_000))
    intent_id = _intent(sessions)
    first = await submit_once(sessions, broker, intent_id)
    again = await submit_once(sessions, broker, intent_id)
    assert first.id == again.id
    assert first.broker_order_id is not None
    assert first.status is OrderStatus.NEW or first.status is OrderStatus.ACCEPTED
    assert len(await broker.list_orders()) == 1
    assert _orders(sessions) == 1


async def test_a_crash_after_the_broker_took_the_order_does_not_send_it_again(
    sessions: sessionmaker[Session],
) -> None:
    broker = PaperBroker(Decimal(10_000))
    intent_id = _intent(sessions)
    row = record_order(sessions, intent_id)  # written pending_submit ...
    assert row.status is OrderStatus.PENDING_SUBMIT
    # ... the broker took it, and the process died before recording the answer:
    await broker.submit(
        OrderRequest(
            client_order_id=row.client_order_id,
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(3),
            type=OrderType.LIMIT,
            limit_price=Decimal("150"),
        )
    )
    recovered = await submit_once(sessions, broker, intent_id)
    assert recovered.status is not OrderStatus.PENDING_SUBMIT
    assert len(await broker.list_orders()) == 1


async def test_a_lost_answer_leaves_the_order_pending_until_the_broker_is_asked(
    sessions: sessionmaker[Session],
) -> None:
    intent_id = _intent(sessions)
    with fake_alpaca_rest(cash=100_000) as alpaca:
        broker = AlpacaBroker(trading_client(alpaca, timeout_s=0.5))
        alpaca.enqueue(AcceptThenTimeout(2.0))
        with pytest.raises(BrokerUnavailableError):
            await submit_once(sessions, broker, intent_id)
        with sessions() as session:
            pending = session.scalars(select(Order)).one()
        assert pending.status is OrderStatus.PENDING_SUBMIT
        settled = await submit_once(sessions, broker, intent_id)
        assert settled.broker_order_id == alpaca.order(pending.client_order_id)["id"]
        assert len(alpaca.submits(pending.client_order_id)) == 1  # one POST, ever


def test_client_order_ids_are_deterministic_and_distinct_per_leg() -> None:
    a = client_order_id(7, 11, 2, OrderLeg.ENTRY)
    assert a == client_order_id(7, 11, 2, OrderLeg.ENTRY)
    assert a != client_order_id(7, 11, 2, OrderLeg.STOP_LOSS)
    assert a != client_order_id(7, 11, 3, OrderLeg.ENTRY)
    assert len(a) <= 48
