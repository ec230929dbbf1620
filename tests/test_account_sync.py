"""The account sync: bars after the execution drive a paper bracket's exits into our books."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from models.enums import OrderLeg, OrderStatus, Timeframe
from models.market import Bar
from models.trading import Order, PortfolioSnapshot, Position, Trade
from services.brokers import PaperBroker
from tasks.execution.account_run import execute_account, sync_account
from tests.test_execution_risk import AS_OF, Case, setup_decision

pytestmark = pytest.mark.anyio


def _bar(sessions: sessionmaker[Session], day: int, low: str, high: str, close: str) -> None:
    with unit_of_work(sessions) as session:
        session.add(
            Bar(
                symbol="AAPL",
                timeframe=Timeframe.D1,
                ts=AS_OF + timedelta(days=day),
                open=Decimal(close),
                high=Decimal(high),
                low=Decimal(low),
                close=Decimal(close),
                volume=Decimal(1_000_000),
            )
        )


async def test_a_take_profit_hit_after_execution_is_booked_by_the_next_sync_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    case = Case("none")  # buy 100 AAPL at 100, take profit 110, stop 95
    decision_id, account_id = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)

    _bar(sessions, 2, low="99", high="104", close="103")  # Monday: nothing triggers
    _bar(sessions, 3, low="102", high="112", close="108")  # Tuesday: through 110
    later = AS_OF + timedelta(days=5)
    first = await sync_account(sessions, case.account, broker, until=later)
    again = await sync_account(sessions, case.account, broker, until=later)

    assert first.new_fills == 1
    assert again.new_fills == 0
    assert first.drift == []
    with sessions() as session:
        legs = {
            o.leg: o.status
            for o in session.scalars(select(Order).where(Order.parent_id.is_not(None)))
        }
        trade = session.scalars(select(Trade)).one()
        position = session.scalars(select(Position)).one()
        snapshots = session.scalars(
            select(PortfolioSnapshot).where(PortfolioSnapshot.account_id == account_id)
        ).all()
    assert legs == {
        OrderLeg.TAKE_PROFIT: OrderStatus.FILLED,
        OrderLeg.STOP_LOSS: OrderStatus.CANCELED,
    }
    assert position.qty == 0
    assert trade.exit_price == Decimal(110)
    assert trade.realized_pnl == Decimal(1_000)  # (110 - 100) x 100, no slippage or commission
    assert trade.exit_at is not None
    assert trade.exit_at.date() == (AS_OF + timedelta(days=3)).date()  # Tuesday, not Friday
    assert len(snapshots) >= 2
    assert snapshots[-1].equity == Decimal(101_000)


async def test_bars_from_after_until_do_not_trigger_anything(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    case = Case("none")
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)
    _bar(sessions, 3, low="80", high="101", close="85")  # a crash, but after `until`

    result = await sync_account(sessions, case.account, broker, until=AS_OF + timedelta(days=2))

    assert result.new_fills == 0
    with sessions() as session:
        assert session.scalars(select(Position)).one().qty == 100


async def test_an_old_decision_executed_after_the_market_moved_on_fills_at_the_newer_price(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    case = Case("none")
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    broker.on_price("AAPL", Decimal("103"), AS_OF + timedelta(days=3))  # Tuesday's price

    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)

    (order,) = await broker.list_orders()
    assert order.avg_fill_price == Decimal("103")  # not Friday's 100: that moment has passed
