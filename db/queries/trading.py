"""Reads of the trading ledger for the CLI and the API: positions, orders, trades, snapshots.

Writes belong to `tasks.execution` (submit, ledger); nothing here changes a row.
`Position` has no relationship to `Account`, so the account's name comes from
`account_names`, one query for a whole table of rows.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.broker import OPEN_STATUSES
from models.enums import OrderStatus
from models.trading import Account, Order, PortfolioSnapshot, Position, Trade

WORKING_STATUSES = OPEN_STATUSES | {OrderStatus.PENDING_SUBMIT}
"""Orders that count against an open-order limit: a `pending_submit` one may already be live."""


def positions(session: Session, account_id: int | None = None) -> list[Position]:
    """Held (non-zero) positions, by account then symbol; flat rows are kept but not listed."""
    stmt = select(Position).where(Position.qty != 0).order_by(Position.account_id, Position.symbol)
    if account_id is not None:
        stmt = stmt.where(Position.account_id == account_id)
    return list(session.scalars(stmt))


def account_names(session: Session, ids: Collection[int] | None = None) -> dict[int, str]:
    """Account id to name, for labelling rows (of `ids` only, if given)."""
    stmt = select(Account.id, Account.name)
    if ids is not None:
        stmt = stmt.where(Account.id.in_(list(ids)))
    return {account_id: name for account_id, name in session.execute(stmt)}


def orders(
    session: Session,
    account_id: int | None = None,
    status: set[OrderStatus] | None = None,
    limit: int = 100,
) -> list[Order]:
    """Orders newest first (bracket legs included), optionally of one account or some statuses."""
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id.desc()).limit(limit)
    if account_id is not None:
        stmt = stmt.where(Order.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Order.status.in_(sorted(status)))
    return list(session.scalars(stmt))


def open_order_count(session: Session, account_id: int) -> int:
    """Orders of the account that may still fill, bracket legs included (`WORKING_STATUSES`)."""
    stmt = (
        select(func.count())
        .select_from(Order)
        .where(Order.account_id == account_id, Order.status.in_(sorted(WORKING_STATUSES)))
    )
    return int(session.scalar(stmt) or 0)


def trades(session: Session, account_id: int | None = None, limit: int = 100) -> list[Trade]:
    """Round trips, open and closed, most recent activity (exit, else entry) first."""
    last_move = func.coalesce(Trade.exit_at, Trade.entry_at)
    stmt = select(Trade).order_by(last_move.desc(), Trade.id.desc()).limit(limit)
    if account_id is not None:
        stmt = stmt.where(Trade.account_id == account_id)
    return list(session.scalars(stmt))


def latest_snapshot(session: Session, account_id: int) -> PortfolioSnapshot | None:
    """The account's most recent snapshot; None before the first."""
    stmt = (
        select(PortfolioSnapshot)
        .where(PortfolioSnapshot.account_id == account_id)
        .order_by(PortfolioSnapshot.ts.desc())
        .limit(1)
    )
    return session.scalar(stmt)
