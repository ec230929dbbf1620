"""Market data: the point-in-time snapshot, metrics, current prices and stored bars.

The snapshot and metrics are what the council sees: computed only from bars
known at `as_of` (default: the newest stored bar's day), with the data hash
a council run records. Prices are the live PriceCache's.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import ReadSession, RuntimeDep
from api.pagination import Page, PageDep
from api.params import AsOfQuery, SymbolsQuery, day_or_newest, parse_symbols, stored_universe
from db.queries.bars import bars_between
from db.queries.instruments import instrument_exists
from models.enums import Timeframe
from models.errors import InvalidInputError, NotFoundError
from models.market import BarOut, Symbol
from models.market_data import PriceSnapshot
from models.snapshot import MarketMetrics, MarketSnapshot

router = APIRouter(prefix="/api/market", tags=["market"])


@router.get("/snapshot")
def market_snapshot(
    session: ReadSession, as_of: AsOfQuery = None, symbols: SymbolsQuery = None
) -> MarketSnapshot:
    """The council's view of the market at `as_of`: per symbol returns (over trading bars),
    volatility, drawdown and distance to moving averages, sector aggregates, correlations,
    and the sha256 of the exact bars used. A symbol with no daily bars at all is a 422; one
    whose bars all come after `as_of` is listed in `missing`."""
    from tasks.market_snapshot import build_snapshot  # numpy and pandas: on first use

    universe = stored_universe(session, symbols)
    return build_snapshot(session, universe, day_or_newest(session, as_of))


@router.get("/metrics")
def market_metrics_of(
    session: ReadSession,
    as_of: AsOfQuery = None,
    symbols: SymbolsQuery = None,
    days: Annotated[
        int, Query(ge=1, le=366, description="Calendar days the returns are taken over.")
    ] = 7,
    window: Annotated[
        int, Query(ge=5, le=250, description="Daily returns the correlation is taken over.")
    ] = 60,
) -> MarketMetrics:
    """Per symbol the `days`-calendar-day return (the last close known at `as_of` over the
    last close known `days` earlier), and the correlation matrix of the last `window` daily
    returns. Point in time: no bar whose close came after `as_of` is read."""
    from tasks.market_metrics import market_metrics  # numpy and pandas: on first use

    universe = stored_universe(session, symbols)
    day = day_or_newest(session, as_of)
    return market_metrics(session, universe, day, days=days, window=window)


@router.get("/prices")
def market_prices(runtime: RuntimeDep, symbols: SymbolsQuery = None) -> list[PriceSnapshot]:
    """The live prices of the market data source: last price, the day's open, change since
    the open and since the previous tick. The cache keeps no session high, low or volume,
    so this is not an OHLCV bar: stored bars are `/api/market/bars/{symbol}`. The stream
    (`/api/stream/prices`) pushes the same rows as they change. Symbols the source does
    not quote are left out."""
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
