"""Trades a person asked for: checked like the council's, queued or sent exactly once."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from models.accounts import AccountConfig, RiskLimits
from models.enums import IntentStatus, OrderStatus, Side
from models.errors import ConflictError, NotFoundError
from models.intents import ManualTrade
from models.trading import Order, Position, TradeIntent
from services.settings import Settings
from tasks.execution.manual import NO_PRICE, execute_pending, place_manual_trades
from tasks.import_bars import import_bar_file
from tests.conftest import SAMPLE_DATA

pytestmark = pytest.mark.anyio


@pytest.fixture
def priced(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    with unit_of_work(sessions) as session:
        import_bar_file(session, SAMPLE_DATA / "sp500_daily_sample.csv.gz")
    return sessions


def _settings(tmp_path: Path, **limits: object) -> Settings:
    account = AccountConfig(name="paper", limits=RiskLimits.model_validate(limits))
    return Settings(accounts=[account], paper_state_dir=tmp_path / "paper")


def _count(sessions: sessionmaker[Session], model: type[object]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


async def test_a_queued_trade_waits_then_executes_once_when_approved(
    priced: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    buy = ManualTrade(symbol="AAPL", side=Side.BUY, qty=Decimal(10))
    [queued] = await place_manual_trades(priced, settings, [buy], source="t1", execute=False)
    assert queued.status == IntentStatus.PENDING_APPROVAL
    assert queued.order_status is None
    assert _count(priced, Order) == 0
    again = await place_manual_trades(priced, settings, [buy], source="t1", execute=False)
    assert [o.intent_id for o in again] == [queued.intent_id]  # the same request, one intent
    assert queued.intent_id is not None
    [done] = await execute_pending(priced, settings, [queued.intent_id])
    assert done.status == IntentStatus.FILLED
    assert done.order_status == OrderStatus.FILLED
    with priced() as session:
        position = session.scalar(select(Position).where(Position.symbol == "AAPL"))
        assert position is not None
        assert position.qty == 10
    with pytest.raises(ConflictError):
        await execute_pending(priced, settings, [queued.intent_id])
    with pytest.raises(NotFoundError):
        await execute_pending(priced, settings, [queued.intent_id + 999])
    assert _count(priced, Order) == 1


async def test_a_trade_beyond_the_limits_is_refused_and_never_sent(
    priced: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, max_order_notional="5000")
    huge = ManualTrade(symbol="AAPL", side=Side.BUY, qty=Decimal(100_000))
    short = ManualTrade(symbol="MSFT", side=Side.SELL, qty=Decimal(5))
    unknown = ManualTrade(symbol="ZZZZ", side=Side.BUY, qty=Decimal(1))
    outcomes = await place_manual_trades(
        priced, settings, [huge, short, unknown], source="t2", execute=True
    )
    assert [o.status for o in outcomes] == [
        IntentStatus.RISK_REJECTED,
        IntentStatus.RISK_REJECTED,
        NO_PRICE,
    ]
    assert "order notional 31,033,000.00 > limit 5,000.00" in (outcomes[0].reason or "")
    assert "MSFT" in (outcomes[1].reason or "")
    assert _count(priced, Order) == 0
    with priced() as session:
        intent = session.get(TradeIntent, outcomes[0].intent_id)
        assert intent is not None
        assert Decimal(intent.risk_checks["requested"]["qty"]) == 100_000
