"""How one recorded fill changes a position and its round trips: the ledger's arithmetic.

A position keeps the signed quantity and the average cost of what is open:
adding re-averages, reducing keeps the average and realises the price move,
crossing zero closes everything and opens the rest at the fill price. A flat
position keeps its row (qty 0) so its realised P&L is not lost. Position P&L is
the price move only; fees are charged to round trips.

Round trips (`Trade` rows) close FIFO per account and symbol. A trade closed in
part is split: the closed part becomes its own row, the rest stays open. Each
fill's fee is shared by quantity between the trades it closes and the one it
opens, so the fees of every row sum to the fees of the fills.

Values come from our `Fill` rows (already at column scale), so positions can be
rebuilt from the fills table alone. Every result is rounded to its column's
scale, so what is compared in memory is what the database hands back.
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import Numeric, select
from sqlalchemy.orm import Session

from models.base import MONEY, PRICE, QTY
from models.enums import Side
from models.trading import Fill, Order, Position, Trade

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


def book_fill(session: Session, order: Order, fill: Fill) -> None:
    """Apply a new fill of `order` to its position and to the account's round trips."""
    closing = _book_position(session, order, fill)
    _book_trades(session, order, fill, closing)


def fit(value: Decimal, column: Numeric[Decimal]) -> Decimal:
    """Round half-even to the scale of `column` (PRICE, QTY or MONEY)."""
    return value.quantize(Decimal(1).scaleb(-(column.scale or 0)), rounding=ROUND_HALF_EVEN)


def _book_position(session: Session, order: Order, fill: Fill) -> Decimal:
    """Apply the fill to the position; return how much of it closed open quantity."""
    pos = session.scalar(
        select(Position).where(
            Position.account_id == order.account_id, Position.symbol == order.symbol
        )
    )
    if pos is None:
        pos = Position(
            account_id=order.account_id,
            symbol=order.symbol,
            qty=ZERO,
            avg_price=ZERO,
            realized_pnl=ZERO,
        )
        session.add(pos)
    signed = fill.qty if order.side is Side.BUY else -fill.qty
    old, new = pos.qty, pos.qty + signed
    if old == 0 or (old > 0) == (signed > 0):  # opening or adding: re-average
        pos.avg_price = fit((old * pos.avg_price + signed * fill.price) / new, PRICE)
        pos.qty = fit(new, QTY)
        return ZERO
    closing = min(fill.qty, abs(old))
    direction = 1 if old > 0 else -1
    moved = (fill.price - pos.avg_price) * closing * direction
    pos.realized_pnl = fit(pos.realized_pnl + moved, MONEY)
    if new != 0 and (new > 0) != (old > 0):  # crossed zero: the rest opens at the fill
        pos.avg_price = fill.price
    pos.qty = fit(new, QTY)
    return closing


def _book_trades(session: Session, order: Order, fill: Fill, closing: Decimal) -> None:
    """Close open round trips FIFO with the closing part, open a new one with the rest."""
    fee_left, qty_left, to_close = fill.fee, fill.qty, closing
    open_trades = session.scalars(
        select(Trade)
        .where(
            Trade.account_id == order.account_id,
            Trade.symbol == order.symbol,
            Trade.exit_at.is_(None),
            Trade.side != order.side,
        )
        .order_by(Trade.entry_at, Trade.id)
    ).all()
    for trade in open_trades:
        if to_close <= 0:
            break
        take = min(trade.qty, to_close)
        exit_fee = _share(fee_left, take, qty_left)
        fee_left, qty_left, to_close = fee_left - exit_fee, qty_left - take, to_close - take
        closed = trade if take == trade.qty else _split(session, trade, take)
        direction = 1 if closed.side is Side.BUY else -1
        closed.exit_price, closed.exit_at, closed.exit_order_id = fill.price, fill.ts, order.id
        closed.fees = fit(closed.fees + exit_fee, MONEY)
        gross = (fill.price - closed.entry_price) * closed.qty * direction
        closed.realized_pnl = fit(gross - closed.fees, MONEY)
    if to_close > 0:  # the trades table lags the position: only history we never saw does this
        logger.warning(
            "ledger.close_without_open_trade",
            extra={"order": order.client_order_id, "symbol": order.symbol, "qty": str(to_close)},
        )
        qty_left -= to_close
    if qty_left > 0:
        session.add(
            Trade(
                account_id=order.account_id,
                symbol=order.symbol,
                side=order.side,
                qty=qty_left,
                entry_price=fill.price,
                entry_at=fill.ts,
                fees=fee_left,
                entry_order_id=order.id,
            )
        )


def _split(session: Session, trade: Trade, take: Decimal) -> Trade:
    """Carve `take` out of an open trade as a row of its own, with its share of entry fees."""
    entry_fee = _share(trade.fees, take, trade.qty)
    part = Trade(
        account_id=trade.account_id,
        symbol=trade.symbol,
        side=trade.side,
        qty=take,
        entry_price=trade.entry_price,
        entry_at=trade.entry_at,
        fees=entry_fee,
        entry_order_id=trade.entry_order_id,
    )
    trade.qty, trade.fees = trade.qty - take, trade.fees - entry_fee
    session.add(part)
    return part


def _share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`part/whole` of `amount`; the last part (part == whole) takes the rounding remainder."""
    return amount if part >= whole else fit(amount * part / whole, MONEY)
