"""Executing approved decisions on one account: reconcile, plan, check, submit, book.

The order of the steps is the safety argument:

1. **Reconcile first.** Orders left `pending_submit` by an earlier attempt
   (crash, timeout) are settled with the broker before anything new is sent
   (`submit_once` asks before it submits).
2. **Prices to the paper broker.** Bars it has not seen are played through it,
   so exits that should have triggered since the last run have.
3. **Plan and check.** Each approved decision becomes this account's intent,
   sized and checked against the account as the broker reports it now, and
   stored with every check's result; a failed check ends it there, before the
   broker is called.
4. **Submit once** per intent that passed.
5. **Book.** The broker's orders and fills are copied into our tables,
   positions and round trips follow, a portfolio snapshot is taken, and each
   change goes out on the bus.

Any step can die and the whole can be run again: every write is keyed so a
repeat finds what the first attempt left (intents by decision and account,
orders by client_order_id, fills by broker fill id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, unit_of_work
from db.queries.accounts import ensure_account
from db.queries.halts import halted_reason
from models.accounts import AccountConfig
from models.base import utcnow
from models.broker import OPEN_STATUSES, BrokerOrder
from models.bus import FILLS_GLOBAL, ORDERS_GATEWAY, BusMessage
from models.council import CouncilDecision
from models.enums import IntentStatus, OrderLeg, OrderStatus
from models.trading import Order, TradeIntent
from services.brokers import Broker, OrderRejectedError, PaperBroker
from services.bus import Bus, BusUnavailableError
from tasks.execution import ledger
from tasks.execution.intents import MarketView, plan_intent, tradable
from tasks.execution.paper_feed import feed_bars, last_close
from tasks.execution.risk import AccountState
from tasks.execution.submit import submit_once

logger = logging.getLogger(__name__)


@dataclass
class AccountExecution:
    """What one account's execution did: a line per intent, for the run's artifact."""

    account: str
    lines: list[dict[str, Any]] = field(default_factory=list)
    new_fills: int = 0
    drift: list[str] = field(default_factory=list)


async def execute_account(
    sessions: sessionmaker[Session],
    account: AccountConfig,
    broker: Broker,
    decision_ids: Sequence[int],
    *,
    as_of: datetime,
    now: datetime | None = None,
    bus: Bus | None = None,
) -> AccountExecution:
    """Execute `decision_ids` on `account` (idempotent); prices are those known at `as_of`.

    `now` is the wall clock the kill switch and market hours are judged at.
    """
    now = now or utcnow()
    with unit_of_work(sessions) as session:
        account_id = ensure_account(session, account).id
        decisions = [session.get(CouncilDecision, d) for d in decision_ids]
        todo = [(d.id, d.symbol) for d in decisions if d is not None and tradable(d)]
    await reconcile_pending(sessions, broker, account_id, account.name)
    if isinstance(broker, PaperBroker):
        held = {p.symbol for p in await broker.positions()}
        working = {o.symbol for o in await broker.list_orders(open_only=True)}
        with read_sessions_of(sessions)() as session:
            feed_bars(session, broker, held | working | {s for _, s in todo}, as_of)

    submitted: set[str] = set()
    for decision_id, symbol in todo:
        intent_id = await _plan(sessions, account, account_id, broker, decision_id, as_of, now)
        if intent_id is not None and await submit_intent(sessions, broker, intent_id, account.name):
            submitted.add(symbol)
    if isinstance(broker, PaperBroker):
        execute_at_last_close(sessions, broker, submitted, as_of)
    result = AccountExecution(account.name)
    result.new_fills, result.drift = await book(sessions, broker, account_id, as_of, bus)
    with read_sessions_of(sessions)() as session:
        result.lines = [_line(session, account.name, d, account_id) for d, _ in todo]
    return result


async def sync_account(
    sessions: sessionmaker[Session],
    account: AccountConfig,
    broker: Broker,
    *,
    until: datetime,
    bus: Bus | None = None,
) -> AccountExecution:
    """Bring our books in line with the broker without sending anything new.

    Settles orders left pending, plays the bars up to `until` through a paper
    broker (so bracket exits trigger on the days they would have), then books
    orders, fills and a snapshot. Run after the close: exits filled during the
    week show up here.
    """
    with unit_of_work(sessions) as session:
        account_id = ensure_account(session, account).id
    await reconcile_pending(sessions, broker, account_id, account.name)
    if isinstance(broker, PaperBroker):
        held = {p.symbol for p in await broker.positions()}
        working = {o.symbol for o in await broker.list_orders(open_only=True)}
        with read_sessions_of(sessions)() as session:
            feed_bars(session, broker, held | working, until)
    result = AccountExecution(account.name)
    result.new_fills, result.drift = await book(sessions, broker, account_id, until, bus)
    return result


async def reconcile_pending(
    sessions: sessionmaker[Session], broker: Broker, account_id: int, account: str
) -> int:
    """Settle every entry order an earlier attempt left `pending_submit`; return how many."""
    with read_sessions_of(sessions)() as session:
        pending = session.scalars(
            select(Order.intent_id).where(
                Order.account_id == account_id,
                Order.status == OrderStatus.PENDING_SUBMIT,
                Order.leg == OrderLeg.ENTRY,
            )
        ).all()
    for intent_id in pending:
        if intent_id is not None:
            await submit_intent(sessions, broker, intent_id, account)
    return len(pending)


async def _plan(
    sessions: sessionmaker[Session],
    account: AccountConfig,
    account_id: int,
    broker: Broker,
    decision_id: int,
    as_of: datetime,
    now: datetime,
) -> int | None:
    """The intent's id if it may be sent (its checks passed), else None."""
    with read_sessions_of(sessions)() as session:
        decision = session.get(CouncilDecision, decision_id)
        assert decision is not None
        intent = session.scalar(
            select(TradeIntent).where(
                TradeIntent.decision_id == decision_id, TradeIntent.account_id == account_id
            )
        )
        if intent is not None and intent.status is not IntentStatus.RISK_REJECTED:
            return intent.id
        priced = last_close(session, decision.symbol, as_of)
    state = await account_state(sessions, account, account_id, broker, now)
    with unit_of_work(sessions) as session:
        decision = session.get(CouncilDecision, decision_id)
        assert decision is not None
        if priced is None:
            logger.warning("%s: no price known at %s; not traded", decision.symbol, as_of)
            return None
        view = MarketView(state=state, price=priced[0], as_of=as_of, now=now)
        intent = plan_intent(session, decision, account, account_id, view)
        return intent.id if intent.status is IntentStatus.APPROVED else None


async def account_state(
    sessions: sessionmaker[Session],
    account: AccountConfig,
    account_id: int,
    broker: Broker,
    now: datetime,
) -> AccountState:
    """The account as the broker reports it now, with our kill switch and day-start equity."""
    money = await broker.account()
    positions = await broker.positions()
    open_orders = await broker.list_orders(open_only=True)
    hours = account.limits.market_hours
    zone = ZoneInfo(hours.timezone) if hours else UTC
    local = now.astimezone(zone)
    day_start = datetime(local.year, local.month, local.day, tzinfo=zone).astimezone(UTC)
    with read_sessions_of(sessions)() as session:
        halted = halted_reason(session, account.name)
        start_equity = ledger.day_start_equity(session, account_id, day_start)
    return AccountState(
        equity=money.equity,
        cash=money.cash,
        buying_power=money.buying_power,
        day_start_equity=start_equity,
        positions={p.symbol: p.qty for p in positions},
        last_prices={},
        open_orders=sum(_open_count(o) for o in open_orders),
        halted=halted,
    )


def _open_count(order: BrokerOrder) -> int:
    return int(order.status in OPEN_STATUSES) + sum(
        1 for leg in order.legs if leg.status in OPEN_STATUSES
    )


async def submit_intent(
    sessions: sessionmaker[Session], broker: Broker, intent_id: int, account: str
) -> bool:
    """Send the intent's order once; a refusal is stored with its reason.

    True if the entry is working at the broker (so a paper broker should price it).
    """
    with read_sessions_of(sessions)() as session:  # the switch is read again at the last moment
        halted = halted_reason(session, account)
    if halted is not None:
        logger.warning("intent %s not sent: %s", intent_id, halted)
    try:
        order = await submit_once(sessions, broker, intent_id, send=halted is None)
    except OrderRejectedError as exc:
        with unit_of_work(sessions) as session:
            row = session.scalar(
                select(Order).where(Order.intent_id == intent_id, Order.leg == OrderLeg.ENTRY)
            )
            intent = session.get(TradeIntent, intent_id)
            assert row is not None
            assert intent is not None
            row.status = OrderStatus.REJECTED
            row.reject_reason = exc.reason
            intent.status = IntentStatus.FAILED
            intent.reject_reason = f"broker refused: {exc.reason}"
        return False
    with unit_of_work(sessions) as session:
        intent = session.get(TradeIntent, intent_id)
        assert intent is not None
        if order.status is OrderStatus.REJECTED:
            intent.status = IntentStatus.FAILED
            return False
        if intent.status is IntentStatus.APPROVED:
            intent.status = IntentStatus.SUBMITTED
    return order.status in OPEN_STATUSES


def execute_at_last_close(
    sessions: sessionmaker[Session], broker: PaperBroker, symbols: set[str], as_of: datetime
) -> None:
    """Paper market orders fill at the last price known at `as_of`, stamped `as_of`.

    That is the price a replayed week could have traded at; the broker's
    slippage moves it against the trader. If the broker was already given
    newer prices (an old decision executed late), its own last price is used:
    an order sent now cannot trade at a price from before.
    """
    with read_sessions_of(sessions)() as session:
        for symbol in sorted(symbols):
            priced = last_close(session, symbol, as_of)
            if priced is None:
                continue
            price, stamp = priced[0], max(as_of, priced[1])
            seen, last = broker.last_price_at(symbol), broker.last_price(symbol)
            if seen is not None and stamp <= seen:
                stamp = seen + timedelta(microseconds=1)  # after the submit, before the next bar
                if seen > priced[1] and last is not None:
                    price = last  # the broker has seen the market move on: no trading in the past
            broker.on_price(symbol, price, stamp)


async def book(
    sessions: sessionmaker[Session],
    broker: Broker,
    account_id: int,
    marks_at: datetime,
    bus: Bus | None,
) -> tuple[int, list[str]]:
    """Copy the broker's orders and fills into our tables; snapshot; announce the changes."""
    orders = await broker.list_orders()
    fills = await broker.fills()
    positions = await broker.positions()
    money = await broker.account()
    events: list[tuple[str, BusMessage]] = []
    with unit_of_work(sessions) as session:
        changed = ledger.sync_orders(session, account_id, orders)
        new_fills = ledger.record_fills(session, account_id, fills)
        _settle_intents(session, changed)
        marks = {
            p.symbol: priced[0]
            for p in positions
            if (priced := last_close(session, p.symbol, marks_at)) is not None
        }
        stamp = max([marks_at, *(f.ts for f in new_fills)])
        ledger.take_snapshot(session, account_id, money, positions, marks, stamp)
        drift = ledger.position_drift(session, account_id, positions)
        for order in changed:
            events.append((ORDERS_GATEWAY, _message("order", ledger.order_event(order))))
        for fill in new_fills:
            parent = session.get(Order, fill.order_id)
            assert parent is not None
            events.append((FILLS_GLOBAL, _message("fill", ledger.fill_event(fill, parent))))
    if drift:
        logger.warning("account %s positions differ from the broker's: %s", account_id, drift)
    await _announce(bus, events)
    return len(new_fills), drift


def _settle_intents(session: Session, changed: Sequence[Order]) -> None:
    """An intent whose entry filled is filled; one whose entry was canceled is canceled."""
    for order in changed:
        if order.leg is not OrderLeg.ENTRY or order.intent_id is None:
            continue
        intent = session.get(TradeIntent, order.intent_id)
        if intent is None:
            continue
        if order.status is OrderStatus.FILLED:
            intent.status = IntentStatus.FILLED
        elif order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            intent.status = IntentStatus.CANCELED


def _message(kind: str, data: dict[str, Any]) -> BusMessage:
    return BusMessage(type=kind, data=data)


async def _announce(bus: Bus | None, events: list[tuple[str, BusMessage]]) -> None:
    """Best effort: the rows are written already; a bus outage loses only the live push."""
    if bus is None:
        return
    for stream, message in events:
        try:
            await bus.publish(stream, message)
        except BusUnavailableError:
            logger.warning("bus unreachable; %d order/fill events not announced", len(events))
            return


def _line(session: Session, account: str, decision_id: int, account_id: int) -> dict[str, Any]:
    """One artifact row: the intent's verdict and its entry order's state."""
    intent = session.scalar(
        select(TradeIntent).where(
            TradeIntent.decision_id == decision_id, TradeIntent.account_id == account_id
        )
    )
    decision = session.get(CouncilDecision, decision_id)
    assert decision is not None
    if intent is None:
        return {
            "account": account,
            "decision": decision_id,
            "symbol": decision.symbol,
            "status": "not planned",
            "reason": "no price known at as_of",
        }
    order = session.scalar(
        select(Order).where(Order.intent_id == intent.id, Order.leg == OrderLeg.ENTRY)
    )
    return {
        "account": account,
        "decision": decision_id,
        "symbol": intent.symbol,
        "side": str(intent.side),
        "qty": str(intent.qty),
        "client_order_id": order.client_order_id if order else None,
        "order_status": str(order.status) if order else None,
        "filled_qty": str(order.filled_qty) if order else None,
        "avg_price": str(order.avg_fill_price) if order and order.avg_fill_price else None,
        "status": str(intent.status),
        "reason": intent.reject_reason or (order.reject_reason if order else None),
    }
