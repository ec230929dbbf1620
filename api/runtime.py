"""Everything the realtime process runs, started and stopped in order by the app's lifespan.

Built per app (no module singletons): engine and sessions, PriceCache, the
market data source, the SSE hub, the bus. `stop` leaves nothing running.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.metrics import Metrics
from db.engine import make_engine, make_session_factory
from models.market_data import Tick
from realtime.price_cache import PriceCache
from realtime.sources.base import MarketDataSource
from realtime.sources.factory import make_source
from realtime.sse_hub import SSEHub
from services.bus import Bus, make_bus
from services.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    engine: Engine
    sessions: sessionmaker[Session]
    cache: PriceCache
    source: MarketDataSource
    hub: SSEHub
    bus: Bus

    def on_tick(self, tick: Tick) -> None:
        """The one path every tick takes: into the cache, counted."""
        self.cache.update(tick)
        self.metrics.ticks.inc()

    async def stop(self) -> None:
        await self.source.stop()
        await self.hub.stop()
        await self.bus.close()
        self.engine.dispose()
        logger.info("realtime.stopped")


async def start_runtime(
    settings: Settings, metrics: Metrics, source: MarketDataSource | None = None
) -> Runtime:
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    cache = PriceCache()
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        engine=engine,
        sessions=sessions,
        cache=cache,
        source=source or make_source(settings, sessions),
        hub=SSEHub(
            cache, interval_s=settings.sse_interval_ms / 1000, retry_ms=settings.sse_retry_ms
        ),
        bus=make_bus(settings.redis_url),
    )
    metrics.watch(metrics.cache_version, lambda: cache.version)
    metrics.watch(metrics.sse_clients, lambda: runtime.hub.clients)
    await runtime.hub.start()
    await runtime.source.start(runtime.on_tick)
    logger.info(
        "realtime.started",
        extra={"source": runtime.source.name, "symbols": len(runtime.source.symbols)},
    )
    return runtime
