"""Starting a paper account afresh, keeping the old one whole.

A paper account that has spent its cash keeps every later council's intents
small or refused (the demo run twice). Wiping it would break "auditable":
orders, fills and positions would lose the account they were booked on. So a
reset *retires* the account instead: its row is renamed `NAME@STAMP` (with
every order, fill, position and snapshot still on it), its broker state file
moves beside it under the same name, and the next use of NAME starts a new
row and a new broker with the configured starting cash. An audit event
records who did it and what the old account held.

Only paper accounts: a live account's money is the broker's, not ours to
reset. The paper account's lock is held throughout, so a council executing
on it meanwhile waits rather than writing to a file being moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.accounts import account_by_name
from db.queries.audit import record_event
from models.accounts import AccountConfig
from models.enums import BrokerKind
from models.errors import ConflictError
from models.trading import Account, Order
from services.brokers.factory import open_broker, paper_state_path
from services.settings import Settings


@dataclass(frozen=True)
class PaperReset:
    """What a reset retired, and where it went."""

    account: str
    starting_cash: Decimal
    retired_as: str | None  # None: the account had never been used
    equity: Decimal | None = None
    positions: int = 0
    orders: int = 0

    def describe(self) -> str:
        fresh = f"paper account {self.account!r} starts afresh with {self.starting_cash:,.2f} cash"
        if self.retired_as is None:
            return f"{fresh} (it had not been used)"
        assert self.equity is not None
        return (
            f"{fresh}; the previous one (equity {self.equity:,.2f}, {self.positions} positions, "
            f"{self.orders} orders) is kept as {self.retired_as!r}"
        )


async def reset_paper_account(
    sessions: sessionmaker[Session],
    settings: Settings,
    account: AccountConfig,
    actor: str,
    now: datetime,
) -> PaperReset:
    """Retire `account` (rename its row and state file) so its next use starts fresh."""
    if account.broker is not BrokerKind.PAPER or account.live:
        raise ConflictError(f"account {account.name!r} is not a paper account: not reset")
    path = paper_state_path(account, settings)
    with sessions() as session:
        row = account_by_name(session, account.name)
        row_id = row.id if row is not None else None
    if row_id is None and not path.exists():  # checked before a broker writes a fresh file
        return PaperReset(account.name, account.starting_cash, None)
    async with open_broker(account, settings) as broker:
        with sessions() as session:
            orders = _order_count(session, row_id) if row_id is not None else 0
        money = await broker.account()
        held = [p for p in await broker.positions() if p.qty != 0]
        retired = f"{account.name}@{now:%Y%m%dT%H%M%S}"
        target = path.with_name(f"{retired}.json")
        try:
            with unit_of_work(sessions) as session:
                if row_id is not None:
                    session.execute(
                        update(Account).where(Account.id == row_id).values(name=retired)
                    )
                record_event(
                    session,
                    actor=actor,
                    event="account.reset",
                    entity_type="account",
                    entity_id=row_id if row_id is not None else account.name,
                    before={
                        "name": account.name,
                        "cash": str(money.cash),
                        "equity": str(money.equity),
                        "positions": {p.symbol: f"{p.qty.normalize():f}" for p in held},
                        "orders": orders,
                    },
                    after={"name": retired, "state_file": target.name},
                )
                if path.exists():  # moved last, inside the transaction: undone if it fails
                    path.replace(target)
        except BaseException:
            if target.exists() and not path.exists():
                target.replace(path)
            raise
    return PaperReset(account.name, account.starting_cash, retired, money.equity, len(held), orders)


def _order_count(session: Session, account_id: int) -> int:
    return session.scalar(select(func.count()).where(Order.account_id == account_id)) or 0
