"""Reads of the trading ledger for the CLI and the API: positions, orders, trades, snapshots.

Writes belong to `tasks.execution` (submit, ledger); nothing here changes a row.
`Position` has no relationship to `Account`, so the account's name comes from
`account_names`, one query for a whole table of rows. The API's reads
(`list_orders`, `list_fills`, `list_trades`, `list_pending_intents`,
`held_positions`) join the name in instead and filter by it; the `list_`
ones are newest first and paged (`Paging`: `since` inclusive and `until`
exclusive on each list's own time column).

Refused intents (`list_refused_intents`, `count_refused_intents`) are read
here too: a refusal by our pre-trade checks never becomes an order, so a
user looking at the orders would not see it otherwise.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from models.broker import OPEN_STATUSES
from models.enums import IntentStatus, OrderLeg, OrderStatus
from models.errors import NotFoundError
from models.trading import Account, Fill, Order, PortfolioSnapshot, Position, Trade, TradeIntent

S = TypeVar("S", bound=Select[Any])

WORKING_STATUSES = OPEN_STATUSES | {OrderStatus.PENDING_SUBMIT}
"""Orders that count against an open-order limit: a `pending_submit` one may already be live."""

REFUSED_STATUSES = (IntentStatus.RISK_REJECTED, IntentStatus.FAILED)
"""Intents that were refused: by our pre-trade checks (or sizing), or by the broker."""


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


# --- the API's lists: rows with their account's name, filtered and paged -----------------


@dataclass(frozen=True)
class OrderLine:
    """An order, its account's name, and the council decision behind it (via its intent)."""

    order: Order
    account: str
    decision_id: int | None


@dataclass(frozen=True)
class FillLine:
    """A fill and what it executed: its order (symbol, side) and the order's account."""

    fill: Fill
    order: Order
    account: str


@dataclass(frozen=True)
class TradeLine:
    trade: Trade
    account: str


@dataclass(frozen=True)
class IntentLine:
    intent: TradeIntent
    account: str


@dataclass(frozen=True)
class RefusalLine:
    """A refused intent, its account's name, and why in words.

    `reason` is the intent's own (the failed checks' details, with their
    numbers), else the broker's words on its entry order: an order the broker
    refused marks its intent failed without always copying the reason.
    """

    intent: TradeIntent
    account: str
    reason: str | None

    @property
    def checks(self) -> list[str]:
        return failed_checks(self.intent)


@dataclass(frozen=True)
class PositionLine:
    position: Position
    account: str


@dataclass(frozen=True)
class Paging:
    """A page of a list: `limit` rows after `offset`, `since` <= time < `until` where given."""

    limit: int = 50
    offset: int = 0
    since: datetime | None = None
    until: datetime | None = None


def require_account(session: Session, configured: Collection[str], name: str) -> None:
    """`NotFoundError` unless `name` is configured or has books (an account since removed).

    A configured account that never traded passes: its lists are empty, not missing.
    """
    if (
        name in configured
        or session.scalar(select(Account.id).where(Account.name == name)) is not None
    ):
        return
    known = ", ".join(sorted(configured)) or "none"
    raise NotFoundError(f"no account {name!r} (configured: {known})")


def list_orders(
    session: Session,
    paging: Paging,
    *,
    account: str | None = None,
    symbol: str | None = None,
    status: Collection[OrderStatus] | None = None,
) -> list[OrderLine]:
    """Orders newest first (by creation), bracket legs as rows of their own with `parent_id`."""
    stmt = (
        select(Order, Account.name, TradeIntent.decision_id)
        .join(Account, Account.id == Order.account_id)
        .outerjoin(TradeIntent, TradeIntent.id == Order.intent_id)
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    if symbol is not None:
        stmt = stmt.where(Order.symbol == symbol)
    if status:
        stmt = stmt.where(Order.status.in_(sorted(status)))
    stmt = _page(stmt.order_by(Order.created_at.desc(), Order.id.desc()), paging, Order.created_at)
    return [OrderLine(o, name, decision) for o, name, decision in session.execute(stmt)]


def list_fills(
    session: Session, paging: Paging, *, account: str | None = None, symbol: str | None = None
) -> list[FillLine]:
    """Fills newest first by execution time, each with its order and the order's account."""
    stmt = (
        select(Fill, Order, Account.name)
        .join(Order, Order.id == Fill.order_id)
        .join(Account, Account.id == Order.account_id)
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    if symbol is not None:
        stmt = stmt.where(Order.symbol == symbol)
    stmt = _page(stmt.order_by(Fill.ts.desc(), Fill.id.desc()), paging, Fill.ts)
    return [FillLine(f, o, name) for f, o, name in session.execute(stmt)]


def list_trades(
    session: Session,
    paging: Paging,
    *,
    account: str | None = None,
    symbol: str | None = None,
    is_open: bool | None = None,
) -> list[TradeLine]:
    """Round trips by most recent activity (exit, else entry), newest first; `since` and
    `until` apply to that same instant. `is_open`: only those without (with) an exit."""
    last_move = func.coalesce(Trade.exit_at, Trade.entry_at)
    stmt = select(Trade, Account.name).join(Account, Account.id == Trade.account_id)
    if account is not None:
        stmt = stmt.where(Account.name == account)
    if symbol is not None:
        stmt = stmt.where(Trade.symbol == symbol)
    if is_open is not None:
        stmt = stmt.where(Trade.exit_at.is_(None) if is_open else Trade.exit_at.is_not(None))
    stmt = _page(stmt.order_by(last_move.desc(), Trade.id.desc()), paging, last_move)
    return [TradeLine(t, name) for t, name in session.execute(stmt)]


def list_pending_intents(
    session: Session, paging: Paging, *, account: str | None = None, symbol: str | None = None
) -> list[IntentLine]:
    """Intents waiting for a trader's approval (`pending_approval`), newest first."""
    stmt = (
        select(TradeIntent, Account.name)
        .join(Account, Account.id == TradeIntent.account_id)
        .where(TradeIntent.status == IntentStatus.PENDING_APPROVAL)
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    if symbol is not None:
        stmt = stmt.where(TradeIntent.symbol == symbol)
    newest = (TradeIntent.created_at.desc(), TradeIntent.id.desc())
    stmt = _page(stmt.order_by(*newest), paging, TradeIntent.created_at)
    return [IntentLine(i, name) for i, name in session.execute(stmt)]


def list_refused_intents(
    session: Session, paging: Paging, *, account: str | None = None, symbol: str | None = None
) -> list[RefusalLine]:
    """Intents refused by a check or the broker, newest refusal first (`since`/`until` on
    the intent's last change, which is the refusal: a refused intent is not touched again
    unless it is judged again, and then the newer verdict is the one that counts)."""
    entry = and_(Order.intent_id == TradeIntent.id, Order.leg == OrderLeg.ENTRY)
    stmt = (
        select(TradeIntent, Account.name, Order.reject_reason)
        .join(Account, Account.id == TradeIntent.account_id)
        .outerjoin(Order, entry)
        .where(TradeIntent.status.in_(REFUSED_STATUSES))
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    if symbol is not None:
        stmt = stmt.where(TradeIntent.symbol == symbol)
    newest = (TradeIntent.updated_at.desc(), TradeIntent.id.desc())
    stmt = _page(stmt.order_by(*newest), paging, TradeIntent.updated_at)
    return [
        RefusalLine(i, name, i.reject_reason or broker) for i, name, broker in session.execute(stmt)
    ]


def count_refused_intents(session: Session, account: str | None = None) -> int:
    """How many intents were refused (of one account, if named): what `--all` would list."""
    stmt = (
        select(func.count())
        .select_from(TradeIntent)
        .join(Account, Account.id == TradeIntent.account_id)
        .where(TradeIntent.status.in_(REFUSED_STATUSES))
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    return int(session.scalar(stmt) or 0)


def failed_checks(intent: TradeIntent) -> list[str]:
    """The names of what refused the intent, sorted (Postgres' JSONB keeps no key order, so
    the order the checks ran in is in `reject_reason`, not here).

    The pre-trade checks' record (`risk_checks["checks"]`, or the checks at the
    top level as older rows stored them) names each failed check. A sizing
    that came to nothing stores no checks ("sizing: ..."), and a broker's
    refusal fails an intent whose checks passed ("broker"). Empty when the
    record names nothing, e.g. an intent judged again without a price: its
    reason says so.
    """
    record = intent.risk_checks or {}
    checks = record.get("checks")
    results = checks if isinstance(checks, dict) else record
    failed = sorted(
        name
        for name, result in results.items()
        if isinstance(result, dict) and result.get("passed") is False
    )
    if failed:
        return failed
    reason = intent.reject_reason or ""
    if reason.startswith("sizing:"):
        return ["sizing"]
    if intent.status is IntentStatus.FAILED:
        return ["broker"]
    return []


def held_positions(session: Session, account: str | None = None) -> list[PositionLine]:
    """Non-zero positions with their account's name, by account then symbol. Not paged:
    there is one row per account and symbol held."""
    stmt = (
        select(Position, Account.name)
        .join(Account, Account.id == Position.account_id)
        .where(Position.qty != 0)
        .order_by(Account.name, Position.symbol)
    )
    if account is not None:
        stmt = stmt.where(Account.name == account)
    return [PositionLine(p, name) for p, name in session.execute(stmt)]


def _page(stmt: S, paging: Paging, column: Any) -> S:
    """`stmt` (already ordered) cut to the page: the time window on `column`, offset, limit."""
    if paging.since is not None:
        stmt = stmt.where(column >= paging.since)
    if paging.until is not None:
        stmt = stmt.where(column < paging.until)
    return stmt.offset(paging.offset).limit(paging.limit)
