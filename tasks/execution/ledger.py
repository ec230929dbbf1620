"""Our tables after the trade: orders, fills, positions, round trips and snapshots, in step
with what a broker reports.

Every function takes a `Session` and plain broker values (what `list_orders()`,
`fills()`, `positions()` and `account()` returned) and never commits, so the
caller owns the transaction and the broker calls, and a re-run with the same
values writes nothing new: orders are matched on `client_order_id`, fills on
(order, broker fill id), snapshots on (account, ts).

Fills must be applied in time order (they are, within a call); a fill that
arrives in a later call with an earlier `ts` than one already applied is not
re-ordered. Position P&L is the price move only; commission lives on `Trade`
rows, whose `realized_pnl` is after fees.

Not here: asking the broker, publishing events (`order_event` / `fill_event`
only build the payloads), and deciding what to do about drift.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.base import MONEY, PRICE, QTY
from models.broker import BrokerAccount, BrokerFill, BrokerOrder, BrokerPosition
from models.trading import Fill, Order, PortfolioSnapshot, Position
from tasks.execution.booking import book_fill, fit

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
# Our average cost is rebuilt from fill prices stored at the PRICE scale: a difference in the
# last digit is rounding, not drift.
_AVG_TOLERANCE = Decimal(1).scaleb(-(PRICE.scale or 0))


def sync_orders(session: Session, account_id: int, orders: Sequence[BrokerOrder]) -> list[Order]:
    """Bring our order rows to the broker's state; create bracket legs we have not seen yet.

    Returns the rows created or whose status or filled quantity changed: the ones
    worth an event. Orders placed outside AITrader are left alone.
    """
    flat: list[tuple[BrokerOrder, BrokerOrder | None]] = [(o, None) for o in orders]
    flat += [(leg, o) for o in orders for leg in o.legs]
    ours = _orders_by_cid(session, account_id, {o.client_order_id for o, _ in flat})
    changed: list[Order] = []
    foreign: list[str] = []
    for broker_order, parent in flat:
        row = ours.get(broker_order.client_order_id)
        entry = ours.get(parent.client_order_id) if parent is not None else None
        if row is None and entry is None:
            foreign.append(broker_order.order_id)
            continue
        if row is None:
            assert entry is not None
            row = _new_leg(account_id, entry, broker_order)
            session.add(row)
            ours[row.client_order_id] = row
            changed.append(row)
        elif _adopt(row, broker_order):
            changed.append(row)
    if foreign:
        logger.info("ledger.foreign_orders", extra={"account_id": account_id, "orders": foreign})
    session.flush()
    return changed


def record_fills(session: Session, account_id: int, fills: Sequence[BrokerFill]) -> list[Fill]:
    """Insert the fills not recorded yet, in time order, and book each into positions and trades.

    A fill whose order row does not exist is skipped (and logged), not marked as
    seen: once `sync_orders` has created the row, the next call records it.
    """
    ours = _orders_by_cid(session, account_id, {f.client_order_id for f in fills})
    seen = {
        (order_id, fill_id)
        for order_id, fill_id in session.execute(
            select(Fill.order_id, Fill.broker_fill_id).where(
                Fill.order_id.in_([o.id for o in ours.values()])
            )
        )
    }
    recorded: list[Fill] = []
    for bf in sorted(fills, key=lambda f: (f.ts, f.fill_id)):
        order = ours.get(bf.client_order_id)
        if order is None:
            logger.warning(
                "ledger.fill_for_unknown_order",
                extra={"account_id": account_id, "fill": bf.fill_id, "order": bf.order_id},
            )
            continue
        if (order.id, bf.fill_id) in seen:
            continue
        seen.add((order.id, bf.fill_id))
        fill = Fill(
            order_id=order.id,
            broker_fill_id=bf.fill_id,
            qty=fit(bf.qty, QTY),
            price=fit(bf.price, PRICE),
            fee=fit(bf.commission, MONEY),
            ts=bf.ts,
        )
        session.add(fill)
        book_fill(session, order, fill)
        recorded.append(fill)
    session.flush()
    return recorded


def take_snapshot(
    session: Session,
    account_id: int,
    account: BrokerAccount,
    positions: Sequence[BrokerPosition],
    marks: Mapping[str, Decimal],
    ts: datetime,
) -> PortfolioSnapshot:
    """Write (or overwrite) the account's value at `ts`.

    Cash, equity and buying power are the broker's; `positions_value` is ours,
    at `marks`, or at average cost for a symbol with no mark.
    """
    value = sum((p.qty * marks.get(p.symbol, p.avg_cost) for p in positions), ZERO)
    row = {
        "account_id": account_id,
        "ts": ts,
        "cash": fit(account.cash, MONEY),
        "positions_value": fit(value, MONEY),
        "equity": fit(account.equity, MONEY),
        "buying_power": fit(account.buying_power, MONEY),
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(PortfolioSnapshot).values(row)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id", "ts"],
        set_={k: stmt.excluded[k] for k in ("cash", "positions_value", "equity", "buying_power")},
    )
    session.execute(stmt)
    query = select(PortfolioSnapshot).where(
        PortfolioSnapshot.account_id == account_id, PortfolioSnapshot.ts == ts
    )
    return session.scalars(query.execution_options(populate_existing=True)).one()


def day_start_equity(session: Session, account_id: int, day_start: datetime) -> Decimal | None:
    """Equity of the day's first snapshot (the daily-loss baseline); None before there is one."""
    return session.scalar(
        select(PortfolioSnapshot.equity)
        .where(PortfolioSnapshot.account_id == account_id, PortfolioSnapshot.ts >= day_start)
        .order_by(PortfolioSnapshot.ts)
        .limit(1)
    )


def position_drift(
    session: Session, account_id: int, positions: Sequence[BrokerPosition]
) -> list[str]:
    """Where our positions and the broker's disagree, one line per symbol; empty when in step.

    A flat row of ours matches a symbol the broker no longer lists.
    """
    ours = {
        p.symbol: p
        for p in session.scalars(select(Position).where(Position.account_id == account_id))
    }
    theirs = {p.symbol: p for p in positions}
    report: list[str] = []
    for symbol in sorted(ours.keys() | theirs.keys()):
        mine, broker = ours.get(symbol), theirs.get(symbol)
        my_qty, my_avg = (mine.qty, mine.avg_price) if mine else (ZERO, ZERO)
        their_qty, their_avg = (broker.qty, broker.avg_cost) if broker else (ZERO, ZERO)
        if my_qty != their_qty:
            report.append(
                f"{symbol}: ours {_text(my_qty)} @ {_text(my_avg)}, "
                f"broker {_text(their_qty)} @ {_text(their_avg)}"
            )
        elif my_qty != 0 and abs(my_avg - their_avg) > _AVG_TOLERANCE:
            report.append(
                f"{symbol}: {_text(my_qty)} held, average cost ours {_text(my_avg)}, "
                f"broker {_text(their_avg)}"
            )
    return report


def order_event(order: Order) -> dict[str, Any]:
    """The `orders:gateway` payload of an order's current state (JSON-able)."""
    return {
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "broker_order_id": order.broker_order_id,
        "account_id": order.account_id,
        "intent_id": order.intent_id,
        "parent_id": order.parent_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "leg": str(order.leg),
        "type": str(order.order_type),
        "status": str(order.status),
        "qty": _text(order.qty),
        "filled_qty": _text(order.filled_qty),
        "avg_fill_price": _text(order.avg_fill_price),
        "limit_price": _text(order.limit_price),
        "stop_price": _text(order.stop_price),
        "submitted_at": order.submitted_at.isoformat() if order.submitted_at else None,
    }


def fill_event(fill: Fill, order: Order) -> dict[str, Any]:
    """The `fills:global` payload of one fill; `price` is this fill's, not the order's average."""
    return {
        "fill_id": fill.id,
        "broker_fill_id": fill.broker_fill_id,
        "order_id": order.id,
        "client_order_id": order.client_order_id,
        "account_id": order.account_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "leg": str(order.leg),
        "status": str(order.status),
        "qty": _text(fill.qty),
        "price": _text(fill.price),
        "fee": _text(fill.fee),
        "ts": fill.ts.isoformat(),
    }


# -- internals -------------------------------------------------------------------------------


def _orders_by_cid(session: Session, account_id: int, cids: set[str]) -> dict[str, Order]:
    if not cids:
        return {}
    query = select(Order).where(Order.account_id == account_id, Order.client_order_id.in_(cids))
    return {o.client_order_id: o for o in session.scalars(query)}


def _adopt(row: Order, known: BrokerOrder) -> bool:
    """Copy the broker's view onto our row; True when its status or filled quantity moved."""
    moved = row.status != known.status or row.filled_qty != known.filled_qty
    row.broker_order_id = known.order_id
    row.status = known.status
    row.filled_qty = fit(known.filled_qty, QTY)
    row.avg_fill_price = _price_or_none(known.avg_fill_price)
    row.limit_price = _price_or_none(known.limit_price)
    row.stop_price = _price_or_none(known.stop_price)
    row.submitted_at = row.submitted_at or known.submitted_at
    return moved


def _new_leg(account_id: int, entry: Order, leg: BrokerOrder) -> Order:
    return Order(
        client_order_id=leg.client_order_id,
        broker_order_id=leg.order_id,
        intent_id=entry.intent_id,
        account_id=account_id,
        parent_id=entry.id,
        leg=leg.leg,
        symbol=leg.symbol,
        side=leg.side,
        qty=fit(leg.qty, QTY),
        order_type=leg.type,
        limit_price=_price_or_none(leg.limit_price),
        stop_price=_price_or_none(leg.stop_price),
        time_in_force=leg.time_in_force,
        status=leg.status,
        filled_qty=fit(leg.filled_qty, QTY),
        avg_fill_price=_price_or_none(leg.avg_fill_price),
        submitted_at=leg.submitted_at,
    )


def _price_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else fit(value, PRICE)


def _text(value: Decimal | None) -> str | None:
    """A decimal as plain text without trailing zeros ("150.5", "3"), for payloads and reports."""
    return None if value is None else format(value.normalize(), "f")
