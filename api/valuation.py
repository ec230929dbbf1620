"""Our books marked to market: each position at the live price, else the last stored close.

The live price is the realtime price cache's (whatever source the process
streams); a symbol the cache has not seen is marked at its newest daily
close known now, and says so in `price_source`. Cash is the account's latest
snapshot's (the broker's figure when the execution stage last booked), not
a live broker call: this answers with the broker down.

Not here: the broker's own view of an account (`GET /api/accounts/{name}`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy.orm import Session

from api.schemas.trading import PortfolioOut, PositionOut, PriceSource
from db.queries.portfolio import last_closes, latest_snapshots
from db.queries.trading import PositionLine, held_positions
from models.base import utcnow
from realtime.price_cache import PriceCache

MONEY_QUANTUM = Decimal("0.00000001")  # the MONEY column's scale
ZERO = Decimal(0)


@dataclass(frozen=True)
class Mark:
    price: Decimal
    source: PriceSource
    ts: datetime


def marked_positions(
    session: Session, cache: PriceCache, account: str | None = None
) -> list[PositionOut]:
    """Held positions (of `account`, or all), each marked at its current price."""
    lines = held_positions(session, account)
    marks = current_marks(session, cache, {line.position.symbol for line in lines})
    return [_marked(line, marks.get(line.position.symbol)) for line in lines]


def portfolio(session: Session, cache: PriceCache, account: str | None = None) -> PortfolioOut:
    """The portfolio now: cash from the latest snapshots, positions marked, and the totals."""
    positions = marked_positions(session, cache, account)
    snapshots = latest_snapshots(session, account)
    cash = sum((line.snapshot.cash for line in snapshots), ZERO)
    priced = [p for p in positions if p.market_value is not None]
    value = sum((p.market_value or ZERO for p in priced), ZERO)
    return PortfolioOut(
        account=account,
        cash=cash,
        cash_as_of=min((line.snapshot.ts for line in snapshots), default=None),
        positions=positions,
        positions_value=value,
        unrealized_pnl=sum((p.unrealized_pnl or ZERO for p in priced), ZERO),
        realized_pnl=sum((p.realized_pnl for p in positions), ZERO),
        total_value=cash + value,
        unpriced=sorted({p.symbol for p in positions if p.market_value is None}),
    )


def current_marks(
    session: Session, cache: PriceCache, symbols: Collection[str], now: datetime | None = None
) -> dict[str, Mark]:
    """A mark for each symbol that has one: the cache's price, else the last close known."""
    marks: dict[str, Mark] = {}
    for symbol in symbols:
        quote = cache.get(symbol)
        if quote is not None:
            marks[symbol] = Mark(Decimal(str(quote.price)), PriceSource.LIVE, quote.ts)
    missing = {s for s in symbols if s not in marks}
    for symbol, close in last_closes(session, missing, now or utcnow()).items():
        marks[symbol] = Mark(close.price, PriceSource.CLOSE, close.known_at)
    return marks


def _marked(line: PositionLine, mark: Mark | None) -> PositionOut:
    p = line.position
    value = pnl = None
    if mark is not None:
        value = (p.qty * mark.price).quantize(MONEY_QUANTUM)
        pnl = (p.qty * (mark.price - p.avg_price)).quantize(MONEY_QUANTUM)
    return PositionOut(
        account=line.account,
        symbol=p.symbol,
        qty=p.qty,
        avg_price=p.avg_price,
        price=mark.price if mark else None,
        price_source=mark.source if mark else None,
        price_ts=mark.ts if mark else None,
        market_value=value,
        unrealized_pnl=pnl,
        realized_pnl=p.realized_pnl,
        updated_at=p.updated_at,
    )
