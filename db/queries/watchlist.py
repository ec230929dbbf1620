"""Each user's watchlist: the symbols they follow, with a note.

Shared by the REST API and the chat assistant, so the rules live here: a
symbol must have an instrument row (we cannot price what we have never
seen), and a user follows a symbol once. Symbols are upper-cased on the way
in. Nothing here commits; the caller records the audit event in the same
transaction.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.errors import ConflictError, InvalidInputError, NotFoundError
from models.market import Instrument, WatchlistItem


def watchlist(session: Session, user_id: int) -> list[WatchlistItem]:
    """The user's items in the order they were added."""
    stmt = (
        select(WatchlistItem)
        .where(WatchlistItem.user_id == user_id)
        .order_by(WatchlistItem.created_at, WatchlistItem.id)
    )
    return list(session.scalars(stmt))


def add_to_watchlist(
    session: Session, user_id: int, symbol: str, note: str | None = None
) -> WatchlistItem:
    """Add `symbol`; `InvalidInputError` (field `symbol`) for a symbol with no instrument row,
    `ConflictError` if the user follows it already."""
    symbol = symbol.strip().upper()
    if session.scalar(select(Instrument.id).where(Instrument.symbol == symbol)) is None:
        raise InvalidInputError("symbol", f"no instrument {symbol!r} is known")
    if _item(session, user_id, symbol) is not None:
        raise ConflictError(f"{symbol} is already on the watchlist")
    row = WatchlistItem(user_id=user_id, symbol=symbol, note=note)
    try:
        with session.begin_nested():  # a concurrent add of the same symbol loses cleanly
            session.add(row)
    except IntegrityError as exc:
        raise ConflictError(f"{symbol} is already on the watchlist") from exc
    return row


def remove_from_watchlist(session: Session, user_id: int, symbol: str) -> WatchlistItem:
    """Remove `symbol` and return the row as it was; `NotFoundError` if it is not there."""
    symbol = symbol.strip().upper()
    row = _item(session, user_id, symbol)
    if row is None:
        raise NotFoundError(f"{symbol} is not on the watchlist")
    session.delete(row)
    session.flush()
    return row


def _item(session: Session, user_id: int, symbol: str) -> WatchlistItem | None:
    stmt = select(WatchlistItem).where(
        WatchlistItem.user_id == user_id, WatchlistItem.symbol == symbol
    )
    return session.scalar(stmt)
