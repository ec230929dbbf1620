"""The kill switch: halting and resuming trading, for one account or all of them.

Read before every order (`halted_reason`), written by `aitrader trading halt`
and `resume`. The log is append-only; the newest row of a scope is its state.
A global halt stops every account whatever the account's own state says.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.trading import TradingHalt

ALL = None  # the scope of a halt that stops every account


def set_halt(
    session: Session, account: str | None, halted: bool, actor: str, reason: str | None = None
) -> TradingHalt:
    """Flip the switch for `account` (None: all accounts) and return the new state row."""
    row = TradingHalt(account=account, halted=halted, reason=reason, actor=actor, ts=utcnow())
    session.add(row)
    session.flush()
    return row


def latest(session: Session, account: str | None) -> TradingHalt | None:
    """The newest row of one scope, or None if the switch was never touched there."""
    scope = TradingHalt.account.is_(None) if account is None else TradingHalt.account == account
    stmt = select(TradingHalt).where(scope).order_by(TradingHalt.ts.desc(), TradingHalt.id.desc())
    return session.scalars(stmt.limit(1)).first()


def halted_reason(session: Session, account: str) -> str | None:
    """Why `account` may not trade now, or None if it may."""
    for scope, label in ((ALL, "all accounts"), (account, f"account {account}")):
        row = latest(session, scope)
        if row is not None and row.halted:
            why = f": {row.reason}" if row.reason else ""
            return f"trading halted for {label} by {row.actor} at {row.ts:%Y-%m-%d %H:%M} UTC{why}"
    return None
