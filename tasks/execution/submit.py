"""Submitting an intent's order exactly once, across retries, crashes and lost answers.

The protocol, in order:

1. The order row is written first, in its own transaction, with status
   `pending_submit` and a `client_order_id` derived from (decision, intent,
   account, leg). The unique constraints on `client_order_id` and on
   (intent, account, leg) make a second writer fail instead of duplicating.
2. Before any submit, the broker is asked for that `client_order_id`. If it
   has the order (an earlier attempt reached it but its answer, or our write
   of it, was lost), the row takes the broker's state and nothing is sent.
3. Only then is the order submitted. A duplicate refusal means step 2 raced
   another attempt: read it back. An unavailable broker leaves the row
   `pending_submit` for the next reconcile; the order may exist or not, and
   only the broker can say which.

So a process killed at any point, re-run, never sends a second order: either
the broker has it (step 2 finds it) or it does not (step 3 sends it once).
"""

from __future__ import annotations

import hashlib
import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, unit_of_work
from models.base import utcnow
from models.broker import BrokerOrder, OrderRequest
from models.enums import OrderLeg, OrderStatus
from models.trading import Order, TradeIntent
from services.brokers import Broker, BrokerUnavailableError, DuplicateClientOrderIdError

logger = logging.getLogger(__name__)


def client_order_id(decision_id: int | None, intent_id: int, account_id: int, leg: OrderLeg) -> str:
    """Deterministic, so every retry of the same order carries the same id (48 chars max)."""
    key = f"{decision_id or 0}:{intent_id}:{account_id}:{leg}"
    return "ait-" + hashlib.sha256(key.encode()).hexdigest()[:40]


def record_order(sessions: sessionmaker[Session], intent_id: int) -> Order:
    """The entry order row of an intent, written `pending_submit` if it does not exist yet."""
    with unit_of_work(sessions) as session:
        intent = session.get(TradeIntent, intent_id)
        if intent is None:
            raise LookupError(f"trade intent {intent_id} does not exist")
        cid = client_order_id(intent.decision_id, intent.id, intent.account_id, OrderLeg.ENTRY)
        existing = session.scalar(select(Order).where(Order.client_order_id == cid))
        if existing is not None:
            return existing
        order = Order(
            client_order_id=cid,
            intent_id=intent.id,
            account_id=intent.account_id,
            leg=OrderLeg.ENTRY,
            symbol=intent.symbol,
            side=intent.side,
            qty=intent.qty,
            order_type=intent.order_type,
            limit_price=intent.limit_price,
            time_in_force=intent.time_in_force,
            status=OrderStatus.PENDING_SUBMIT,
        )
        session.add(order)
        try:
            session.flush()
        except IntegrityError:  # another attempt wrote it between our read and our write
            session.rollback()
            raise
        return order


async def submit_once(
    sessions: sessionmaker[Session], broker: Broker, intent_id: int, *, send: bool = True
) -> Order:
    """Make sure the broker has the intent's order, once; return the order row as it stands.

    With `send=False` (trading halted) an order the broker already has is still
    adopted, but nothing is submitted: the row stays `pending_submit`.
    """
    order = record_order(sessions, intent_id)
    if order.status is not OrderStatus.PENDING_SUBMIT:
        return order
    known = await broker.get_by_client_order_id(order.client_order_id)
    if known is None and not send:
        return order
    if known is None:
        with read_sessions_of(sessions)() as session:
            intent = session.get(TradeIntent, intent_id)
            assert intent is not None
            request = OrderRequest(
                client_order_id=order.client_order_id,
                symbol=intent.symbol,
                side=intent.side,
                qty=intent.qty,
                type=intent.order_type,
                limit_price=intent.limit_price,
                time_in_force=intent.time_in_force,
                take_profit=intent.take_profit,
                stop_loss=intent.stop_loss,
            )
        try:
            known = await broker.submit(request)
        except DuplicateClientOrderIdError:
            known = await broker.get_by_client_order_id(order.client_order_id)
            if known is None:
                raise BrokerUnavailableError(
                    f"{order.client_order_id}: refused as a duplicate, yet not found"
                ) from None
    return _adopt(sessions, order.id, known)


def _adopt(sessions: sessionmaker[Session], order_id: int, known: BrokerOrder) -> Order:
    """Our row takes the broker's view of the order."""
    with unit_of_work(sessions) as session:
        row = session.get(Order, order_id)
        assert row is not None
        row.broker_order_id = known.order_id
        row.status = known.status
        row.filled_qty = known.filled_qty
        row.avg_fill_price = known.avg_fill_price
        row.submitted_at = row.submitted_at or known.submitted_at or utcnow()
        return row
