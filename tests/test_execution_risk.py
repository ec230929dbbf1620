"""Risk before money: an order that fails any pre-trade check never reaches the broker.

Each case breaks exactly one check for an approved AAPL decision (buy 10% of
100,000 at a last close of 100: 100 shares) and runs the real execution path
against a real paper broker. The broker must have no order, the intent must
say why, and no order row may exist. A control case shows the same setup
does reach the broker when nothing is broken.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.accounts import ensure_account
from db.queries.halts import set_halt
from db.queries.instruments import ensure_instruments
from models.accounts import AccountConfig, MarketHours, RiskLimits
from models.base import utcnow
from models.bus import FILLS_GLOBAL, ORDERS_GATEWAY
from models.council import CouncilDecision, CouncilRun, Pitch
from models.enums import (
    DecisionAction,
    DecisionStatus,
    IntentStatus,
    OrderStatus,
    RunStatus,
    Side,
    Timeframe,
)
from models.market import Bar
from models.trading import Order, PortfolioSnapshot, TradeIntent
from services.brokers import PaperBroker
from services.brokers.alpaca import AlpacaBroker
from services.bus.memory import InProcessBus
from tasks.execution.account_run import account_state, execute_account
from tasks.execution.intents import MarketView, plan_intent
from tasks.execution.submit import record_order
from tests.fake_alpaca_rest import Reject, fake_alpaca_rest, trading_client

pytestmark = pytest.mark.anyio

AS_OF = datetime(2024, 3, 9, tzinfo=UTC)  # a Saturday: the week's closes are known
SATURDAY_NOON = datetime(2024, 3, 9, 17, 0, tzinfo=UTC)
WEDNESDAY_NOON = datetime(2024, 3, 6, 17, 0, tzinfo=UTC)


@dataclass
class Case:
    """One way to break one check, and the words the rejection must contain."""

    check: str
    account: AccountConfig = field(default_factory=lambda: AccountConfig(name="acct"))
    action: DecisionAction = DecisionAction.BUY
    weight: Decimal = Decimal("0.10")
    take_profit: Decimal = Decimal("110")
    stop_loss: Decimal = Decimal("95")
    now: datetime = WEDNESDAY_NOON
    before: Callable[[Session, int], None] | None = None


def _limits(**kw: object) -> AccountConfig:
    return AccountConfig(name="acct", limits=RiskLimits.model_validate(kw))


def _halt_all(session: Session, account_id: int) -> None:
    set_halt(session, None, True, "ops", "fat finger drill")


def _halt_this(session: Session, account_id: int) -> None:
    set_halt(session, "acct", True, "ops", "broker incident")


def _lost_today(session: Session, account_id: int) -> None:
    # the day began at 102,000; the broker reports 100,000 now: 2,000 lost
    session.add(
        PortfolioSnapshot(
            account_id=account_id,
            ts=WEDNESDAY_NOON.replace(hour=0, minute=0, second=1),
            cash=Decimal(102_000),
            positions_value=Decimal(0),
            equity=Decimal(102_000),
            buying_power=Decimal(102_000),
        )
    )


CASES = [
    Case("kill_switch", before=_halt_all),
    Case("kill_switch", before=_halt_this),
    Case("symbol_allowed", account=_limits(deny_symbols=["AAPL"])),
    Case("symbol_allowed", account=_limits(allow_symbols=["MSFT"])),
    Case("market_hours", account=_limits(market_hours=MarketHours()), now=SATURDAY_NOON),
    Case(
        "short_allowed", action=DecisionAction.SELL, take_profit=Decimal(90), stop_loss=Decimal(105)
    ),
    Case("bracket_prices", take_profit=Decimal("99"), stop_loss=Decimal("90")),
    Case("max_order_notional", account=_limits(max_order_notional=5_000)),
    Case("max_position_pct", account=_limits(max_position_pct="0.05")),
    Case("max_open_orders", account=_limits(max_open_orders=2)),
    Case("daily_loss", account=_limits(max_daily_loss=1_000), before=_lost_today),
]


def setup_decision(sessions: sessionmaker[Session], case: Case) -> tuple[int, int]:
    """Bars for AAPL ending at 100, one approved decision; return (decision id, account id)."""
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL", "MSFT"])
        start = AS_OF - timedelta(days=40)
        for i in range(39):
            close = Decimal(100) + Decimal((i % 5) - 2) if i < 38 else Decimal(100)
            session.add(
                Bar(
                    symbol="AAPL",
                    timeframe=Timeframe.D1,
                    ts=start + timedelta(days=i),
                    open=close,
                    high=close + 1,
                    low=close - 1,
                    close=close,
                    volume=Decimal(1_000_000),
                )
            )
        run = CouncilRun(as_of=AS_OF, status=RunStatus.COMPLETED)
        session.add(run)
        session.flush()
        side = Side.BUY if case.action is DecisionAction.BUY else Side.SELL
        pitch = Pitch(
            run_id=run.id,
            pm="pm-1",
            symbol="AAPL",
            side=side,
            conviction=Decimal("0.7"),
            thesis="test",
            entry_price=Decimal(100),
            take_profit=case.take_profit,
            stop_loss=case.stop_loss,
        )
        session.add(pitch)
        session.flush()
        decision = CouncilDecision(
            run_id=run.id,
            pitch_id=pitch.id,
            symbol="AAPL",
            action=case.action,
            target_weight=case.weight,
            conviction=Decimal("0.7"),
            rationale="test",
            status=DecisionStatus.APPROVED,
            approved_by="test",
            decided_at=utcnow(),
        )
        session.add(decision)
        account_id = ensure_account(session, case.account).id
        if case.before is not None:
            case.before(session, account_id)
        session.flush()
        return decision.id, account_id


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.check)
async def test_an_order_failing_a_pre_trade_check_never_reaches_the_broker(
    sessions: sessionmaker[Session], tmp_path: Path, case: Case
) -> None:
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")

    result = await execute_account(
        sessions, case.account, broker, [decision_id], as_of=AS_OF, now=case.now
    )

    assert await broker.list_orders() == []
    with sessions() as session:
        intent = session.scalars(select(TradeIntent)).one()
        assert session.scalars(select(Order)).all() == []
    assert intent.status is IntentStatus.RISK_REJECTED
    checks = intent.risk_checks["checks"]
    failed = [name for name, c in checks.items() if not c["passed"]]
    assert failed == [case.check]
    assert intent.reject_reason == checks[case.check]["detail"]
    assert result.lines[0]["status"] == "risk_rejected"
    assert result.lines[0]["reason"] == intent.reject_reason


async def test_the_same_decision_with_no_check_broken_reaches_the_broker_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    case = Case("none")
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")

    for _ in range(2):  # a second run finds the intent and the order, sends nothing
        await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)

    orders = await broker.list_orders()
    assert len(orders) == 1
    assert orders[0].qty == 100
    assert [leg.leg for leg in orders[0].legs] == ["take_profit", "stop_loss"]
    with sessions() as session:
        intent = session.scalars(select(TradeIntent)).one()
        rows = session.scalars(select(Order).order_by(Order.id)).all()
    assert intent.status is IntentStatus.FILLED
    assert all(c["passed"] for c in intent.risk_checks["checks"].values())
    assert [(r.leg, r.status) for r in rows] == [
        ("entry", OrderStatus.FILLED),
        ("take_profit", OrderStatus.ACCEPTED),
        ("stop_loss", OrderStatus.ACCEPTED),
    ]
    assert {r.parent_id for r in rows[1:]} == {rows[0].id}


async def test_a_decision_bigger_than_the_buying_power_is_sent_cut_to_fit(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """120,000 wanted of a 100,000 account: 990 shares (1 % kept back), not a refusal.

    The buying-power check stays among the pre-trade checks as a guard; sizing
    now keeps an order inside it, so an account that has spent most of its
    cash still trades (the demo run twice).
    """
    account = AccountConfig(
        name="acct", allocation=Decimal(2), limits=RiskLimits(max_position_pct=None)
    )
    case = Case("none", account=account, weight=Decimal("0.6"))
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")

    result = await execute_account(sessions, account, broker, [decision_id], as_of=AS_OF)

    (order,) = await broker.list_orders()
    assert order.qty == 990
    with sessions() as session:
        intent = session.scalars(select(TradeIntent)).one()
    assert intent.status is IntentStatus.FILLED
    assert intent.qty == 990
    sizing = intent.risk_checks["sizing"]
    assert sizing["capped"] == (
        "buying power 100,000.00 (less 1% reserve) opens 990 of 1200 shares at 100"
    )
    assert intent.risk_checks["checks"]["buying_power"]["passed"] is True
    assert result.lines[0]["status"] == "filled"


async def test_a_halt_on_another_account_does_not_stop_this_one(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    def halt_other(session: Session, account_id: int) -> None:
        set_halt(session, "other", True, "ops", "only that one")

    case = Case("none", before=halt_other)
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)
    assert len(await broker.list_orders()) == 1


async def test_a_broker_refusal_is_stored_with_the_brokers_reason_and_not_retried(
    sessions: sessionmaker[Session],
) -> None:
    case = Case("none", account=AccountConfig(name="acct", broker="alpaca"))
    decision_id, _ = setup_decision(sessions, case)
    with fake_alpaca_rest() as server:
        server.set_price("AAPL", "100")
        server.enqueue(Reject(403, "insufficient buying power"))
        broker = AlpacaBroker(trading_client(server))
        for _ in range(2):
            result = await execute_account(
                sessions, case.account, broker, [decision_id], as_of=AS_OF
            )
        submits = server.submits()
    assert len(submits) == 1  # the refusal is final for this intent: no second POST
    with sessions() as session:
        intent = session.scalars(select(TradeIntent)).one()
        order = session.scalars(select(Order)).one()
    assert intent.status is IntentStatus.FAILED
    assert order.status is OrderStatus.REJECTED
    assert order.reject_reason is not None
    assert "insufficient buying power" in order.reject_reason
    assert result.lines[0]["reason"] == intent.reject_reason


async def test_an_intent_refused_under_a_halt_is_judged_again_after_resume(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    case = Case("kill_switch", before=_halt_all)
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)
    assert await broker.list_orders() == []

    with unit_of_work(sessions) as session:
        set_halt(session, None, False, "ops")
    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)

    assert len(await broker.list_orders()) == 1
    with sessions() as session:
        intent = session.scalars(select(TradeIntent)).one()
    assert intent.status is IntentStatus.FILLED
    (earlier,) = intent.risk_checks["history"]
    assert "fat finger drill" in earlier["reason"]
    assert earlier["checks"]["kill_switch"]["passed"] is False


async def test_orders_and_fills_are_announced_on_the_bus_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    case = Case("none")
    decision_id, _ = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    bus = InProcessBus()
    for _ in range(2):  # the second run changes nothing, so announces nothing
        await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF, bus=bus)

    orders = await bus.tail(ORDERS_GATEWAY, last_id="0", block_ms=0)
    fills = await bus.tail(FILLS_GLOBAL, last_id="0", block_ms=0)
    legs = sorted(d.message.data["leg"] for d in orders)
    assert legs == ["entry", "stop_loss", "take_profit"]
    assert [d.message.type for d in fills] == ["fill"]
    fill = fills[0].message.data
    assert fill["symbol"] == "AAPL"
    assert Decimal(fill["qty"]) == 100
    entry = next(d.message.data for d in orders if d.message.data["leg"] == "entry")
    assert fill["client_order_id"] == entry["client_order_id"]
    await bus.close()


async def test_a_halt_after_the_checks_passed_still_stops_a_pending_order_from_being_sent(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    """A crash left the order row pending; the operator halted; the re-run must not send it."""
    case = Case("none")
    decision_id, account_id = setup_decision(sessions, case)
    broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
    with unit_of_work(sessions) as session:
        decision = session.get(CouncilDecision, decision_id)
        assert decision is not None
        state = await account_state(sessions, case.account, account_id, broker, WEDNESDAY_NOON)
        view = MarketView(state=state, price=Decimal(100), as_of=AS_OF, now=WEDNESDAY_NOON)
        intent = plan_intent(session, decision, case.account, account_id, view)
        assert intent.status is IntentStatus.APPROVED
        intent_id = intent.id
    record_order(sessions, intent_id)  # ... and the process died before asking the broker
    with unit_of_work(sessions) as session:
        set_halt(session, None, True, "ops", "incident")

    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)

    assert await broker.list_orders() == []
    with sessions() as session:
        assert session.scalars(select(Order)).one().status is OrderStatus.PENDING_SUBMIT

    with unit_of_work(sessions) as session:
        set_halt(session, None, False, "ops")
    await execute_account(sessions, case.account, broker, [decision_id], as_of=AS_OF)
    assert len(await broker.list_orders()) == 1
