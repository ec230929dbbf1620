"""Choose and build the market data source and the book feed the settings ask for.

Which symbols: `REALTIME_SYMBOLS` when set; else every symbol with daily bars
in the database; else a small default set (the simulator then falls back to
sector/default parameters). The simulator is fitted to the bars known today.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from db.queries.bar_coverage import bar_coverage
from models.enums import Timeframe
from models.errors import ConfigurationError
from realtime.price_cache import PriceCache
from realtime.sources.base import MarketDataSource
from realtime.sources.book_base import BookFeed
from realtime.sources.sim_book import SimulatedBookFeed
from realtime.sources.simulator import GBMSimulator
from services.settings import BookFeedKind, MarketDataSourceKind, Settings

if TYPE_CHECKING:
    from realtime.sources.replay import ReplaySource

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "AMZN", "GOOGL", "JPM", "XOM", "JNJ", "PG")


def make_source(settings: Settings, sessions: sessionmaker[Session]) -> MarketDataSource:
    kind = settings.market_data_source
    with sessions() as session:
        if kind is MarketDataSourceKind.SIMULATOR:
            return GBMSimulator.from_database(
                session,
                stream_symbols(settings, session),
                datetime.now(UTC).date(),
                interval_s=settings.sim_interval_ms / 1000,
            )
        if kind is MarketDataSourceKind.REPLAY:
            return _replay(settings, session)
        # alpaca-py brings pandas (~0.3 s, tens of MB): loaded only for the source that uses it
        from realtime.sources.alpaca import AlpacaSource

        return AlpacaSource.from_settings(settings, stream_symbols(settings, session))


def make_book_feed(settings: Settings, cache: PriceCache) -> BookFeed | None:
    """The L2 feed BOOK_FEED asks for; None for `none`. The sim quotes whatever `cache` prices."""
    if settings.book_feed is BookFeedKind.NONE:
        return None
    return SimulatedBookFeed(
        cache,
        venues=settings.book_venues,
        levels=settings.book_levels,
        interval_s=settings.book_interval_ms / 1000,
    )


def stream_symbols(settings: Settings, session: Session) -> list[str]:
    if settings.realtime_symbols:
        return [s.upper() for s in settings.realtime_symbols]
    with_bars = sorted({c.symbol for c in bar_coverage(session, timeframe=Timeframe.D1)})
    return with_bars or list(DEFAULT_SYMBOLS)


def _replay(settings: Settings, session: Session) -> ReplaySource:
    from realtime.sources.replay import ReplaySource

    try:
        timeframe = Timeframe(settings.replay_timeframe)
    except ValueError:
        raise ConfigurationError(
            f"REPLAY_TIMEFRAME: {settings.replay_timeframe!r} is not one of "
            f"{', '.join(t.value for t in Timeframe)}"
        ) from None
    if settings.replay_path is not None:
        return ReplaySource.from_file(
            settings.replay_path,
            timeframe=timeframe,
            symbol=settings.replay_symbol,
            speed=settings.replay_speed,
            loop=True,
        )
    coverage = bar_coverage(session, settings.realtime_symbols or None, timeframe)
    if not coverage:
        raise ConfigurationError(
            f"MARKET_DATA_SOURCE=replay: no {timeframe} bars in the database and no REPLAY_PATH"
        )
    return ReplaySource.from_database(
        session,
        [c.symbol for c in coverage],
        timeframe,
        min(c.first for c in coverage),
        max(c.last for c in coverage) + timedelta(microseconds=1),
        speed=settings.replay_speed,
        loop=True,
    )
