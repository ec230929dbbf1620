"""Market data: the point-in-time snapshot, metrics, current prices and stored bars.

The snapshot and metrics are what the council sees: computed only from bars
known at `as_of` (default: the newest stored bar's day), with the data hash
a council run records. Prices are the live PriceCache's.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.deps import ReadSession, RuntimeDep
from api.pagination import Page, PageDep
from api.params import AsOfQuery, SymbolsQuery, parse_symbols
from db.queries.bars import bar_coverage, bars_between, newest_bar_day
from db.queries.instruments import instrument_exists
from models.enums import Timeframe
from models.errors import InvalidInputError, NotFoundError
from models.market import BarOut, Symbol
from models.market_data import PriceSnapshot
from models.snapshot import Correlation, MarketSnapshot
from tasks.market_snapshot import build_snapshot

router = APIRouter(prefix="/api/market", tags=["market"])


class SymbolReturns(BaseModel):
    symbol: str
    close: float
    ret_1d: float | None
    ret_5d: float | None
    ret_7d: float | None
    ret_20d: float | None
    vol_20d: float | None


class MarketMetricsOut(BaseModel):
    """Returns over 1, 5, 7 and 20 trading days, and return correlations over `window`."""

    as_of: str
    data_hash: str
    returns: list[SymbolReturns]
    correlation: Correlation


@router.get("/snapshot")
def market_snapshot(
    session: ReadSession, as_of: AsOfQuery = None, symbols: SymbolsQuery = None
) -> MarketSnapshot:
    """The council's view of the market at `as_of`: per symbol returns, volatility,
    drawdown and distance to moving averages, sector aggregates, correlations, and the
    sha256 of the exact bars used. Unknown symbols are listed in `missing`."""
    return _snapshot(session, as_of, symbols, window=20)


@router.get("/metrics")
def market_metrics(
    session: ReadSession,
    as_of: AsOfQuery = None,
    symbols: SymbolsQuery = None,
    window: Annotated[
        int, Query(ge=5, le=250, description="Daily returns the correlation is taken over.")
    ] = 20,
) -> MarketMetricsOut:
    """7-day (and 1, 5, 20-day) returns and the correlation matrix of daily returns."""
    snap = _snapshot(session, as_of, symbols, window=window)
    return MarketMetricsOut(
        as_of=snap.as_of.isoformat(),
        data_hash=snap.data_hash,
        returns=[SymbolReturns.model_validate(m.model_dump()) for m in snap.symbols],
        correlation=snap.correlation,
    )


@router.get("/prices")
def market_prices(runtime: RuntimeDep, symbols: SymbolsQuery = None) -> list[PriceSnapshot]:
    """The live prices of the market data source: last price, the day's open, change since
    the open and since the previous tick. The stream (`/api/stream/prices`) pushes the
    same rows as they change; daily OHLCV history is `/api/market/bars/{symbol}`."""
    wanted = parse_symbols(symbols)
    return runtime.cache.snapshot(wanted)[1]


@router.get("/bars/{symbol}")
def market_bars(
    symbol: Annotated[Symbol, Path(description="A ticker; case does not matter.")],
    session: ReadSession,
    page: PageDep,
    timeframe: Annotated[Timeframe, Query(description="Bar interval.")] = Timeframe.D1,
) -> Page[BarOut]:
    """Stored bars of one symbol, newest first; `since`/`until` on the bar's start."""
    if timeframe is Timeframe.TICK:
        raise InvalidInputError("query.timeframe", "ticks are not stored as bars")
    if not instrument_exists(session, symbol):
        raise NotFoundError(f"no instrument {symbol}")
    rows = bars_between(
        session,
        symbol,
        timeframe,
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of(rows, page)


def _snapshot(
    session: Session, as_of: date | None, symbols: str | None, *, window: int
) -> MarketSnapshot:
    universe = parse_symbols(symbols) or sorted(
        {c.symbol for c in bar_coverage(session, None, Timeframe.D1)}
    )
    day = as_of or newest_bar_day(session)
    if day is None or not universe:
        raise NotFoundError("no daily bars stored: `aitrader data import` some first")
    return build_snapshot(
        session, universe, day, lookback_bars=max(60, window + 1), corr_window=window
    )
