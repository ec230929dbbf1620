"""Reads for valuing the books: portfolio snapshots and the last stored close of symbols.

Snapshots are written by the execution stage (`tasks.execution.ledger.take_snapshot`);
nothing here writes. A close is "known" once its bar has ended
(`db.queries.bars.knowledge_cutoff`), so today's bar, still forming, is not
taken for a close.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from db.queries.bars import knowledge_cutoff
from db.queries.trading import Paging
from models.enums import Timeframe
from models.market import Bar
from models.trading import Account, PortfolioSnapshot


@dataclass(frozen=True)
class SnapshotLine:
    snapshot: PortfolioSnapshot
    account: str


@dataclass(frozen=True)
class Close:
    """A daily close and the instant it became known (the bar's end)."""

    price: Decimal
    known_at: datetime


def latest_snapshots(session: Session, account: str | None = None) -> list[SnapshotLine]:
    """Each account's newest snapshot (of `account` only, if given), by account name."""
    newest = (
        select(PortfolioSnapshot.account_id, func.max(PortfolioSnapshot.ts).label("ts"))
        .group_by(PortfolioSnapshot.account_id)
        .subquery()
    )
    stmt = (
        select(PortfolioSnapshot, Account.name)
        .join(
            newest,
            and_(
                newest.c.account_id == PortfolioSnapshot.account_id,
                newest.c.ts == PortfolioSnapshot.ts,
            ),
        )
        .join(Account, Account.id == PortfolioSnapshot.account_id)
        .order_by(Account.name)
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    return [SnapshotLine(s, name) for s, name in session.execute(stmt)]


def snapshot_history(
    session: Session, paging: Paging, *, account: str | None = None
) -> list[SnapshotLine]:
    """Snapshots OLDEST first (an equity curve reads left to right), then by account name;
    `since`/`until` on the snapshot's instant."""
    stmt = select(PortfolioSnapshot, Account.name).join(
        Account, Account.id == PortfolioSnapshot.account_id
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    if paging.since is not None:
        stmt = stmt.where(PortfolioSnapshot.ts >= paging.since)
    if paging.until is not None:
        stmt = stmt.where(PortfolioSnapshot.ts < paging.until)
    stmt = stmt.order_by(PortfolioSnapshot.ts, Account.name).offset(paging.offset)
    return [SnapshotLine(s, name) for s, name in session.execute(stmt.limit(paging.limit))]


def last_closes(session: Session, symbols: Collection[str], until: datetime) -> dict[str, Close]:
    """The newest daily close of each symbol known at `until`; symbols without one are absent."""
    if not symbols:
        return {}
    newest = (
        select(Bar.symbol, func.max(Bar.ts).label("ts"))
        .where(
            Bar.symbol.in_(sorted(symbols)),
            Bar.timeframe == Timeframe.D1,
            Bar.ts <= knowledge_cutoff(until, Timeframe.D1),
        )
        .group_by(Bar.symbol)
        .subquery()
    )
    stmt = select(Bar.symbol, Bar.close, Bar.ts).join(
        newest,
        and_(newest.c.symbol == Bar.symbol, newest.c.ts == Bar.ts, Bar.timeframe == Timeframe.D1),
    )
    return {
        symbol: Close(Decimal(str(close)), ts + Timeframe.D1.duration)
        for symbol, close, ts in session.execute(stmt)
    }
