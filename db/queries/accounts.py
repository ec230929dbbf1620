"""The `accounts` rows behind configured accounts: one per name, created on first use."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.accounts import AccountConfig
from models.trading import Account


def ensure_account(session: Session, config: AccountConfig) -> Account:
    """The row for `config.name`, created or brought in line with the configuration.

    Limits are mirrored for display only; the configuration is what the checks read.
    """
    row = session.scalar(select(Account).where(Account.name == config.name))
    if row is None:
        row = Account(name=config.name, broker=config.broker)
        session.add(row)
    row.broker = config.broker
    row.is_live = config.live
    row.max_order_notional = config.limits.max_order_notional
    row.max_daily_loss = config.limits.max_daily_loss
    session.flush()
    return row


def account_by_name(session: Session, name: str) -> Account | None:
    return session.scalar(select(Account).where(Account.name == name))
