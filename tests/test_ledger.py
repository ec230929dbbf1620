"""The ledger keeps orders, fills, positions, round trips and snapshots in step with a broker.

Orders are placed the way the OMS places them (an intent, then `submit_once`)
on the real paper broker; prices are scripted through `on_price`; the ledger
is then settled from what the broker reports, on SQLite and on Postgres.
After every scenario our positions must match the paper broker's own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries import trading as queries
from db.queries.instruments import ensure_instruments
from models.base import Base, IdMixin
from models.broker import OrderRequest
from models.enums import BrokerKind, OrderLeg, OrderStatus, OrderType, Side
from models.trading import Account, Fill, Order, PortfolioSnapshot, Position, Trade, TradeIntent
from services.brokers.paper import PaperBroker
from tasks.execution.ledger import (
    day_start_equity,
    fill_event,
    order_event,
    position_drift,
    record_fills,
    sync_orders,
    take_snapshot,
)
from tasks.execution.submit import submit_once

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
CENT = Decimal("0.01")
D = Decimal
Row = TypeVar("Row", bound=IdMixin)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def engine(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return make_session_factory(engine)


def make_broker(commission: Decimal = CENT) -> PaperBroker:
    return PaperBroker(Decimal(100_000), commission_per_share=commission, clock=lambda: T0)


def make_account(sessions: sessionmaker[Session], name: str = "main") -> int:
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL", "MSFT"])
        account = Account(name=name, broker=BrokerKind.PAPER)
        session.add(account)
        session.flush()
        return account.id


async def place(
    sessions: sessionmaker[Session],
    broker: PaperBroker,
    account_id: int,
    side: Side,
    qty: int,
    *,
    take_profit: str | None = None,
    stop_loss: str | None = None,
) -> Order:
    """A market order placed as the OMS places it: an intent, then submit_once."""
    with unit_of_work(sessions) as session:
        count = session.scalar(select(func.count()).select_from(TradeIntent)) or 0
        intent = TradeIntent(
            idempotency_key=f"intent-{count + 1}",
            account_id=account_id,
            symbol="AAPL",
            side=side,
            qty=Decimal(qty),
            order_type=OrderType.MARKET,
            take_profit=Decimal(take_profit) if take_profit else None,
            stop_loss=Decimal(stop_loss) if stop_loss else None,
        )
        session.add(intent)
        session.flush()
        intent_id = intent.id
    return await submit_once(sessions, broker, intent_id)


async def settle(
    sessions: sessionmaker[Session], broker: PaperBroker, account_id: int
) -> tuple[list[Order], list[Fill]]:
    """What the reconcile task does: sync orders first, then record fills, in one transaction."""
    orders, fills = await broker.list_orders(), await broker.fills()
    with unit_of_work(sessions) as session:
        return sync_orders(session, account_id, orders), record_fills(session, account_id, fills)


async def drift(sessions: sessionmaker[Session], broker: PaperBroker, account_id: int) -> list[str]:
    with sessions() as session:
        return position_drift(session, account_id, await broker.positions())


def rows(sessions: sessionmaker[Session], model: type[Row]) -> list[Row]:
    with sessions() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def position(sessions: sessionmaker[Session], symbol: str = "AAPL") -> Position:
    [held] = [p for p in rows(sessions, Position) if p.symbol == symbol]
    return held


async def test_a_bracket_that_takes_profit_leaves_one_closed_trade_net_of_commission(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    entry = await place(
        sessions, broker, account_id, Side.BUY, 10, take_profit="110", stop_loss="95"
    )
    broker.on_price("AAPL", Decimal(100), at(1))  # the entry fills
    changed, recorded = await settle(sessions, broker, account_id)

    assert {(o.leg, o.status) for o in changed} == {
        (OrderLeg.ENTRY, OrderStatus.FILLED),
        (OrderLeg.TAKE_PROFIT, OrderStatus.ACCEPTED),
        (OrderLeg.STOP_LOSS, OrderStatus.ACCEPTED),
    }
    legs = [o for o in changed if o.leg is not OrderLeg.ENTRY]
    assert {(o.parent_id, o.intent_id, o.side) for o in legs} == {
        (entry.id, entry.intent_id, Side.SELL)
    }
    assert [(f.qty, f.price, f.fee) for f in recorded] == [(D(10), D(100), D("0.10"))]
    assert (position(sessions).qty, position(sessions).avg_price) == (D(10), D(100))
    assert await drift(sessions, broker, account_id) == []

    broker.on_price("AAPL", Decimal(104), at(2))
    broker.on_price("AAPL", Decimal(111), at(3))  # the take-profit limit sells at 111
    changed, recorded = await settle(sessions, broker, account_id)

    assert {(o.leg, o.status) for o in changed} == {
        (OrderLeg.TAKE_PROFIT, OrderStatus.FILLED),
        (OrderLeg.STOP_LOSS, OrderStatus.CANCELED),
    }
    assert [(f.qty, f.price) for f in recorded] == [(D(10), D(111))]
    flat = position(sessions)
    assert (flat.qty, flat.realized_pnl) == (D(0), D(110))  # the price move; fees go on the trade
    [trade] = rows(sessions, Trade)
    assert (trade.side, trade.qty, trade.entry_price, trade.exit_price) == (
        Side.BUY,
        D(10),
        D(100),
        D(111),
    )
    assert (trade.entry_at, trade.exit_at) == (at(1), at(3))
    assert trade.fees == Decimal("0.20")
    assert trade.realized_pnl == Decimal("109.80")
    assert trade.entry_order_id == entry.id
    assert trade.exit_order_id == next(o.id for o in changed if o.leg is OrderLeg.TAKE_PROFIT)
    assert await drift(sessions, broker, account_id) == []


async def test_settling_the_same_broker_state_twice_writes_nothing_new(
    engine: Engine, sessions: sessionmaker[Session]
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    await place(sessions, broker, account_id, Side.BUY, 10, take_profit="110", stop_loss="95")
    broker.on_price("AAPL", Decimal(100), at(1))
    broker.on_price("AAPL", Decimal(94), at(2))  # through the stop
    await settle(sessions, broker, account_id)
    before = [[_state(r) for r in rows(sessions, m)] for m in (Order, Fill, Trade, Position)]

    writes: list[str] = []
    event.listen(engine, "before_cursor_execute", _collect_writes(writes))
    assert await settle(sessions, broker, account_id) == ([], [])
    assert writes == []  # not even an UPDATE to the same values

    after = [[_state(r) for r in rows(sessions, m)] for m in (Order, Fill, Trade, Position)]
    assert after == before
    assert [len(t) for t in after] == [3, 2, 1, 1]


async def test_adding_to_a_position_re_averages_and_reducing_keeps_the_average(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    for minute, side, qty, price in [(1, Side.BUY, 10, 100), (2, Side.BUY, 20, 101)]:
        await place(sessions, broker, account_id, side, qty)
        broker.on_price("AAPL", Decimal(price), at(minute))
    await settle(sessions, broker, account_id)
    assert position(sessions).avg_price == Decimal("100.66666667")  # 3020 / 30, at PRICE scale

    await place(sessions, broker, account_id, Side.SELL, 15)
    broker.on_price("AAPL", Decimal(102), at(3))
    await settle(sessions, broker, account_id)

    held = position(sessions)
    assert (held.qty, held.avg_price) == (D(15), D("100.66666667"))
    assert held.realized_pnl == Decimal("19.99999995")  # (102 - 100.66666667) x 15
    assert await drift(sessions, broker, account_id) == []


async def test_a_partial_close_splits_the_oldest_open_trades_first(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    for minute, side, qty, price in [(1, Side.BUY, 10, 100), (2, Side.BUY, 10, 110)]:
        await place(sessions, broker, account_id, side, qty)
        broker.on_price("AAPL", Decimal(price), at(minute))
    await place(sessions, broker, account_id, Side.SELL, 15)
    broker.on_price("AAPL", Decimal(120), at(3))
    await settle(sessions, broker, account_id)  # all three fills in one call

    trades = sorted(rows(sessions, Trade), key=lambda t: (t.exit_at is None, t.entry_at))
    assert [(t.qty, t.entry_price, t.exit_price, t.fees, t.realized_pnl) for t in trades] == [
        (D(10), D(100), D(120), D("0.20"), D("199.80")),
        (D(5), D(110), D(120), D("0.10"), D("49.90")),  # the closed part of the second
        (D(5), D(110), None, D("0.05"), None),  # its remainder, still open
    ]
    assert sum(t.fees for t in trades) == sum(f.fee for f in rows(sessions, Fill))
    held = position(sessions)
    assert (held.qty, held.avg_price, held.realized_pnl) == (D(5), D(105), D(225))
    assert await drift(sessions, broker, account_id) == []


async def test_selling_past_zero_closes_the_long_and_opens_a_short_at_the_fill(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    await place(sessions, broker, account_id, Side.BUY, 10)
    broker.on_price("AAPL", Decimal(100), at(1))
    await place(sessions, broker, account_id, Side.SELL, 15)
    broker.on_price("AAPL", Decimal(90), at(2))
    await settle(sessions, broker, account_id)

    held = position(sessions)
    assert (held.qty, held.avg_price, held.realized_pnl) == (D(-5), D(90), D(-100))
    closed, short = rows(sessions, Trade)
    assert (closed.side, closed.qty, closed.exit_price, closed.fees) == (
        Side.BUY,
        D(10),
        D(90),
        D("0.20"),
    )
    assert closed.realized_pnl == Decimal("-100.20")
    assert (short.side, short.qty, short.entry_price, short.fees, short.exit_at) == (
        Side.SELL,
        D(5),
        D(90),
        D("0.05"),
        None,
    )
    assert await drift(sessions, broker, account_id) == []


async def test_a_fill_for_an_order_we_do_not_know_is_skipped_until_its_row_exists(
    sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tasks.execution.ledger")
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    await place(sessions, broker, account_id, Side.BUY, 10, take_profit="110", stop_loss="95")
    await broker.submit(  # placed outside AITrader, by hand
        OrderRequest(
            client_order_id="by-hand-1",
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(5),
            take_profit=Decimal(120),
            stop_loss=Decimal(80),
        )
    )
    broker.on_price("AAPL", Decimal(100), at(1))  # both entries fill
    broker.on_price("AAPL", Decimal(112), at(2))  # our take-profit fills
    fills = await broker.fills()

    with unit_of_work(sessions) as session:  # fills first: the leg rows do not exist yet
        assert [f.qty for f in record_fills(session, account_id, fills)] == [10]
    with unit_of_work(sessions) as session:
        sync_orders(session, account_id, await broker.list_orders())
        assert [(f.qty, f.price) for f in record_fills(session, account_id, fills)] == [
            (D(10), D(112))
        ]

    assert len(rows(sessions, Fill)) == 2
    assert {o.client_order_id for o in rows(sessions, Order)}.isdisjoint({"by-hand-1"})
    foreign = [r for r in caplog.records if r.getMessage() == "ledger.foreign_orders"]
    assert len(foreign) == 1  # the hand-placed bracket, legs included, once per sync
    skipped = [r for r in caplog.records if r.getMessage() == "ledger.fill_for_unknown_order"]
    assert len(skipped) == 3  # by-hand entry twice, our take-profit once
    assert await drift(sessions, broker, account_id) == ["AAPL: ours 0 @ 100, broker 5 @ 100"]


async def test_position_drift_names_each_symbol_where_we_and_the_broker_disagree(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    broker.on_price("MSFT", Decimal(300), at(0))
    await place(sessions, broker, account_id, Side.BUY, 10)
    broker.on_price("AAPL", Decimal(100), at(1))
    await settle(sessions, broker, account_id)
    assert await drift(sessions, broker, account_id) == []

    for symbol, qty in (("AAPL", 5), ("MSFT", 2)):
        request = OrderRequest(
            client_order_id=f"by-hand-{symbol}", symbol=symbol, side=Side.BUY, qty=Decimal(qty)
        )
        await broker.submit(request)
    broker.on_price("AAPL", Decimal(106), at(2))
    broker.on_price("MSFT", Decimal(300), at(2))

    assert await drift(sessions, broker, account_id) == [
        "AAPL: ours 10 @ 100, broker 15 @ 102",
        "MSFT: ours 0 @ 0, broker 2 @ 300",
    ]


async def test_a_snapshot_at_the_same_instant_is_overwritten_not_duplicated(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(commission=Decimal(0)), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    await place(sessions, broker, account_id, Side.BUY, 10)
    broker.on_price("AAPL", Decimal(100), at(1))
    broker.on_price("AAPL", Decimal(105), at(2))
    account, held = await broker.account(), await broker.positions()

    with unit_of_work(sessions) as session:
        first = take_snapshot(session, account_id, account, held, {"AAPL": Decimal(105)}, at(2))
        assert (first.cash, first.positions_value, first.equity) == (
            D(99_000),
            D(1050),
            D(100_050),
        )
    with unit_of_work(sessions) as session:  # no mark: valued at average cost
        again = take_snapshot(session, account_id, account, held, {}, at(2))
        assert again.positions_value == 1000
        take_snapshot(session, account_id, account, held, {}, at(60))

    assert [(s.ts, s.positions_value) for s in rows(sessions, PortfolioSnapshot)] == [
        (at(2), D(1000)),
        (at(60), D(1000)),
    ]
    with sessions() as session:
        assert day_start_equity(session, account_id, at(0)) == 100_050
        assert day_start_equity(session, account_id, at(61)) is None
        latest = queries.latest_snapshot(session, account_id)
        assert latest is not None
        assert latest.ts == at(60)


async def test_the_read_helpers_list_held_positions_newest_orders_and_working_legs(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    entry = await place(
        sessions, broker, account_id, Side.BUY, 10, take_profit="110", stop_loss="95"
    )
    broker.on_price("AAPL", Decimal(100), at(1))
    await settle(sessions, broker, account_id)

    with sessions() as session:
        assert [p.symbol for p in queries.positions(session, account_id)] == ["AAPL"]
        assert queries.account_names(session) == {account_id: "main"}
        assert queries.open_order_count(session, account_id) == 2  # the two exits
        newest = queries.orders(session, account_id)
        assert [o.leg for o in newest][-1] is OrderLeg.ENTRY
        filled = queries.orders(session, status={OrderStatus.FILLED})
        assert [o.id for o in filled] == [entry.id]
        assert [t.exit_at for t in queries.trades(session, account_id)] == [None]

    broker.on_price("AAPL", Decimal(94), at(2))
    await settle(sessions, broker, account_id)
    with sessions() as session:
        assert queries.positions(session) == []  # the flat row stays, unlisted
        assert queries.open_order_count(session, account_id) == 0
        assert [t.exit_at for t in queries.trades(session)] == [at(2)]


async def test_order_and_fill_events_are_plain_json_with_decimals_as_text(
    sessions: sessionmaker[Session],
) -> None:
    broker, account_id = make_broker(), make_account(sessions)
    broker.on_price("AAPL", Decimal(100), at(0))
    await place(sessions, broker, account_id, Side.BUY, 10)
    broker.on_price("AAPL", Decimal("100.5"), at(1))
    [order], [fill] = await settle(sessions, broker, account_id)

    order_payload = json.loads(json.dumps(order_event(order)))
    assert order_payload["client_order_id"] == order.client_order_id
    assert order_payload["account_id"] == account_id
    assert (order_payload["symbol"], order_payload["side"], order_payload["leg"]) == (
        "AAPL",
        "buy",
        "entry",
    )
    assert (order_payload["status"], order_payload["qty"]) == ("filled", "10")
    assert order_payload["avg_fill_price"] == "100.5"
    fill_payload = json.loads(json.dumps(fill_event(fill, order)))
    assert fill_payload["qty"] == "10"
    assert (fill_payload["price"], fill_payload["fee"]) == ("100.5", "0.1")
    assert fill_payload["ts"] == at(1).isoformat()
    assert fill_payload["status"] == "filled"


def _state(row: IdMixin) -> dict[str, object]:
    """A row's column values, to compare a table before and after."""
    assert isinstance(row, Base)
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key != "updated_at"}


def _collect_writes(into: list[str]) -> Callable[..., None]:
    """An engine listener keeping every INSERT, UPDATE and DELETE it sees."""

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            into.append(statement)

    return listen
