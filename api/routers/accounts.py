"""Positions and broker accounts, from our books and (for one account) the broker.

`/api/positions` and `/api/accounts` read our database: they answer with a
broker down. `/api/accounts/{name}` asks the account's broker now (the
broker proxy) and answers 503 when it cannot be reached.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import ReadSession, RuntimeDep, SettingsDep
from api.errors import problem_responses
from api.schemas.trading import AccountFilter, AccountTradingOut, PositionOut, SnapshotOut
from api.valuation import marked_positions
from db.queries import halts
from db.queries.portfolio import latest_snapshots
from models.accounts import AccountConfig, RiskLimits, Sizing
from models.base import utcnow
from models.broker import BrokerOrder, BrokerPosition
from models.enums import BrokerKind
from models.errors import NotFoundError
from models.trading import PortfolioSnapshot, TradingHalt
from services.brokers.factory import open_broker

router = APIRouter(prefix="/api", tags=["accounts"])

BROKER_LOCK_WAIT_S = 5.0  # a paper account busy in an execution run: 503 after this long


class AccountOut(BaseModel):
    """A configured account (never its keys), its latest booked value and its halt state."""

    name: str
    broker: BrokerKind
    live: bool
    allocation: Decimal = Field(description="Multiplies every council decision's weight.")
    sizing: Sizing
    limits: RiskLimits
    snapshot: SnapshotOut | None = Field(description="The latest booked value; null: none yet.")
    trading: AccountTradingOut


class BrokerAccountOut(BaseModel):
    """One account as its broker reports it at `as_of`: cash, positions, working orders."""

    name: str
    broker: BrokerKind
    live: bool
    as_of: datetime
    cash: Decimal
    equity: Decimal = Field(description="Cash plus positions at the broker's last prices.")
    buying_power: Decimal
    positions: list[BrokerPosition]
    open_orders: list[BrokerOrder] = Field(description="Bracket exits nested in `legs`.")


@router.get("/positions")
def get_positions(
    session: ReadSession, runtime: RuntimeDep, account: AccountFilter = None
) -> list[PositionOut]:
    """Held positions from our books, by account and symbol, marked at the live price (else
    the last stored daily close: see `price_source`). Not paged: one row per holding."""
    return marked_positions(session, runtime.cache, account)


@router.get("/accounts")
def get_accounts(session: ReadSession, settings: SettingsDep) -> list[AccountOut]:
    """Every configured account with its latest snapshot and whether it may trade. Not
    paged: the list is the configuration."""
    snapshots = {line.account: line.snapshot for line in latest_snapshots(session)}
    every = halts.latest(session, halts.ALL)
    return [
        _account_out(config, snapshots.get(config.name), every, halts.latest(session, config.name))
        for config in settings.accounts
    ]


@router.get("/accounts/{name}", responses=problem_responses(503))
async def get_broker_account(
    name: Annotated[str, Path(min_length=1, max_length=100)], settings: SettingsDep
) -> BrokerAccountOut:
    """The account as its broker reports it now: cash, equity, buying power, positions and
    open orders. 404 for an account not configured; 503 when the broker cannot be reached
    (or a paper account is busy in an execution run). A paper account that never traded
    answers its starting cash (its state file is created then, as its first run would)."""
    config = next((a for a in settings.accounts if a.name == name), None)
    if config is None:
        raise NotFoundError(f"no account {name!r} is configured")
    async with open_broker(config, settings, wait_s=BROKER_LOCK_WAIT_S) as broker:
        account = await broker.account()
        positions = await broker.positions()
        orders = await broker.list_orders(open_only=True)
    return BrokerAccountOut(
        name=config.name,
        broker=config.broker,
        live=config.live,
        as_of=utcnow(),
        cash=account.cash,
        equity=account.equity,
        buying_power=account.buying_power,
        positions=positions,
        open_orders=orders,
    )


def _account_out(
    config: AccountConfig,
    snapshot: PortfolioSnapshot | None,
    every: TradingHalt | None,
    own: TradingHalt | None,
) -> AccountOut:
    return AccountOut(
        name=config.name,
        broker=config.broker,
        live=config.live,
        allocation=config.allocation,
        sizing=config.sizing,
        limits=config.limits,
        snapshot=SnapshotOut.of(snapshot, config.name) if snapshot is not None else None,
        trading=AccountTradingOut.of(config.name, every, own),
    )
