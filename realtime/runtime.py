"""Everything the realtime process runs, started and stopped in order by the app's lifespan.

Built per app (no module singletons): engine and sessions, PriceCache, the
market data source, the SSE hub, the bus. `stop` leaves nothing running.

What runs depends on `REALTIME_ROLE`:

* `all` (default): one process, the embedded setup: the source feeds the
  cache, the pattern and strategy engines, books and bars; hubs serve clients.
* `ingest`: the same, and a `MarketPublisher` sends prices and books to the
  replicas over Redis (realtime/market_stream.py). Its PriceCache versions
  start from the clock (microseconds), so a restarted ingest process keeps
  counting up past what its replicas hold (a tick a microsecond would be
  needed to overtake the clock).
* `api`: a replica. No source, engines, bars or news: a `MarketFollower` fills
  the cache and books from the ingest tier's streams; signals, suggestions and
  job updates reach its hubs through the bus bridge like everyone's.

Nothing here knows about HTTP or Prometheus: the API process exports the
counters each part keeps (api/realtime_metrics.py) and passes a hook for the
one histogram observed on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_read_session_factory, make_session_factory
from models.errors import ConfigurationError
from models.market_data import Tick
from realtime.background import BackgroundTask
from realtime.book_service import BookService
from realtime.bus_bridge import BusBridge, JobPoller
from realtime.engine_setup import pattern_setup, strategy_engine
from realtime.gc_policy import GCPolicy
from realtime.jobs import JobSupervisor
from realtime.market_stream import MarketFollower, MarketPublisher
from realtime.news_stream import AlpacaNewsStream, NewsStore, start_news_stream
from realtime.patterns.engine import PatternEngine, datetime_to_ns, warm_up
from realtime.patterns.sink import SignalSink
from realtime.price_cache import PriceCache
from realtime.sentiment_feed import SentimentFeed
from realtime.sources.base import MarketDataSource
from realtime.sources.factory import make_book_feed, make_source
from realtime.sse_hub import SSEHub
from realtime.strategy.engine import StrategyEngine
from realtime.ws_hub import Topic, WSHub
from services.bus import Bus, make_bus
from services.settings import NewsSource, RealtimeRole, Settings

if TYPE_CHECKING:
    from realtime.bar_aggregator import MinuteBarAggregator

logger = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
KEPT_GRACE_S = 30.0  # how long `stop` waits for work that outlives its request
REPLICA_ROLES = frozenset({RealtimeRole.INGEST, RealtimeRole.API})  # they need Redis
LIVE_SOURCES = frozenset({"alpaca"})  # whose ticks are real trades worth keeping as bars
SLOW_STOP_S = 2.0  # a stop step slower than this is logged with its name
THREADS = 64  # the worker threads database work runs on (see start_runtime)


@dataclass(frozen=True)
class RuntimeHooks:
    """What the hosting process plugs in: code realtime/ may not import itself (tasks/,
    api/). The API passes both (api/app.py)."""

    store_news: NewsStore | None = None  # tasks.import_news.import_news_rows; NEWS_SOURCE=alpaca
    on_suggestion_latency: Callable[[float], None] | None = None  # a histogram's `observe`


class MarketFeed(Protocol):
    """What health and status ask of whatever fills the cache: a source, or a follower."""

    name: str

    @property
    def running(self) -> bool: ...

    @property
    def symbols(self) -> frozenset[str]: ...


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]  # may write (BEGIN IMMEDIATE on SQLite): keep them short
    read_sessions: sessionmaker[Session]  # reads only (deferred; a flush raises)
    cache: PriceCache
    source: MarketDataSource | None  # REALTIME_ROLE=api: none (the follower fills the cache)
    hub: SSEHub
    ws_hub: WSHub
    bus: Bus
    bridge: BusBridge
    job_poller: JobPoller | None  # only without Redis: flows cannot reach an in-process bus
    books: BookService
    jobs: JobSupervisor
    patterns: PatternEngine | None = None  # PATTERN_ENGINE=false: none
    signals: SignalSink | None = None
    strategy: StrategyEngine | None = None  # STRATEGY_ENGINE=false or no pattern engine: none
    bars: MinuteBarAggregator | None = None  # live sources only
    publisher: MarketPublisher | None = None  # REALTIME_ROLE=ingest
    follower: MarketFollower | None = None  # REALTIME_ROLE=api
    sentiment: SentimentFeed | None = None
    news: AlpacaNewsStream | None = None  # NEWS_SOURCE=alpaca: Alpaca's live news, stored
    status_task: BackgroundTask = field(default_factory=lambda: BackgroundTask("system-status"))
    gc_policy: GCPolicy | None = None
    gc_task: BackgroundTask = field(default_factory=lambda: BackgroundTask("gc-policy"))
    ticks: int = 0  # ticks (or, on a replica, followed entries) written to the cache
    kept: set[asyncio.Task[Any]] = field(default_factory=set)  # work that outlives its request

    @property
    def role(self) -> RealtimeRole:
        return self.settings.realtime_role

    @property
    def feed(self) -> MarketFeed:
        """The market data source, or on a replica the follower of the ingest tier."""
        feed = self.source if self.source is not None else self.follower
        assert feed is not None, "a runtime has a source or a follower"
        return feed

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Let `task` run to its end even if the request that started it goes away (a chat
        turn that places trades must store its reply); `stop` waits for it a while."""
        self.kept.add(task)
        task.add_done_callback(self.kept.discard)

    def status(self) -> dict[str, object]:
        """What `system_status` subscribers and operators see."""
        return {
            "role": self.role.value,
            "source": self.feed.name,
            "source_running": self.feed.running,
            "symbols": len(self.feed.symbols),
            "bus": type(self.bus).__name__,
            "bus_status": self.bus.status,
            "sse_clients": self.hub.clients,
            "ws_clients": self.ws_hub.clients,
            "cache_version": self.cache.version,
            "pattern_ticks": self.patterns.ticks if self.patterns else 0,
            "signals": self.patterns.signals if self.patterns else 0,
            "signals_unpublished": self.signals.unpublished if self.signals else 0,
            "suggestions": self.strategy.counters["suggestions"] if self.strategy else 0,
            "suggestions_unwritten": self.strategy.pending if self.strategy else 0,
            "models": self.served_models(),
            "books": len(self.books.symbols()),
            "news_stream": self.news.running if self.news is not None else None,
            "sentiment_symbols": len(self.sentiment.latest) if self.sentiment else 0,
            "stream_lag_s": round(self.follower.lag_s, 4) if self.follower else None,
        }

    def served_models(self) -> dict[str, object]:
        """Which version of each model the strategy engine serves, and why one is not."""
        if self.strategy is None:
            return {}
        models = self.strategy.models
        served: dict[str, object] = {n: f"v{s.version}" for n, s in models.active.items()}
        served.update({f"{n}:challenger": f"v{s.version}" for n, s in models.challengers.items()})
        served.update({f"{n}:error": why for n, why in models.load_errors.items()})
        served["breaker"] = self.strategy.breaker.state
        if self.settings.inference_tensorrt:  # asked for: say whether it races, or why not
            served["tensorrt"] = models.tensorrt_absent or "racing ONNX Runtime"
        return served

    async def publish_status(self, every_s: float = STATUS_EVERY_S) -> None:
        while True:
            self.ws_hub.publish(Topic.SYSTEM_STATUS, self.status())
            await asyncio.sleep(every_s)

    def on_tick(self, tick: Tick) -> None:
        """The one path every tick takes: into the cache, counted."""
        self.cache.update(tick)
        if self.patterns is not None and self.signals is not None:
            fired = self.patterns.on_tick(
                tick.symbol, tick.price, tick.size, datetime_to_ns(tick.ts)
            )
            if fired:
                self.signals.submit(fired)
        self.hub.notify()
        self.ws_hub.notify()
        if self.bars is not None:
            self.bars.add(tick)
        self.ticks += 1

    def on_followed(self, entries: int) -> None:
        """A replica's path: the follower wrote `entries` into the cache; wake the hubs."""
        self.hub.notify()
        self.ws_hub.notify()
        self.ticks += entries

    def signal_counters(self) -> dict[str, float]:
        sink = self.signals
        if sink is None:
            return {}
        return {
            "fired": sink.submitted,
            "published": sink.published,
            "written": sink.written,
            "publish_failed": sink.publish_failures,
            "write_failed": sink.write_failures,
            "dropped": sink.dropped,
            "republished": sink.republished,  # held back by a bus outage, published after it
            "publish_dropped": sink.publish_dropped,  # held back past the bound: never published
            "ws_replayed": self.ws_hub.replayed,  # sent to subscribers catching up with `since`
            "ws_duplicates": self.ws_hub.duplicates,  # reached the hub twice, sent once
        }

    async def stop(self) -> None:
        if self.kept:
            await asyncio.wait(list(self.kept), timeout=KEPT_GRACE_S)
        await _timed("jobs", self.jobs.stop())
        await _timed("gc", self.gc_task.stop())
        if self.gc_policy is not None:
            self.gc_policy.restore()
        await _timed("status", self.status_task.stop())
        if self.publisher is not None:
            await _timed("publisher", self.publisher.stop())
        await _timed("books", self.books.stop())
        if self.source is not None:
            await _timed("source", self.source.stop())
        if self.signals is not None:  # after the source: no tick can fire a signal past this
            await _timed("signals", self.signals.stop())
        if self.strategy is not None:  # after the signals: their last ones are scored
            await _timed("strategy", self.strategy.stop())
        if self.bars is not None:
            await _timed("bars", self.bars.stop())
        if self.job_poller is not None:
            await _timed("job_poller", self.job_poller.stop())
        if self.sentiment is not None:
            await _timed("sentiment", self.sentiment.stop())
        if self.news is not None:
            await _timed("news", self.news.stop())
        await _timed("bridge", self.bridge.stop())
        await _timed("sse_hub", self.hub.stop())
        await _timed("ws_hub", self.ws_hub.stop())
        await _timed("bus", self.bus.close())
        self.engine.dispose()
        logger.info("realtime.stopped")


async def _timed(step: str, stopping: Awaitable[None]) -> None:
    """Await one component's stop; a slow one is logged by name (what held a shutdown up),
    once while it is still stopping, so a step that never ends is named too."""
    started = time.perf_counter()
    task = asyncio.ensure_future(stopping)
    try:
        done, _ = await asyncio.wait({task}, timeout=SLOW_STOP_S)
        if not done:
            logger.warning(  # the step in the message too: test logs show only the message
                "realtime.stopping_slowly: %s", step, extra={"step": step, "after_s": SLOW_STOP_S}
            )
        await task
    except asyncio.CancelledError:  # the stop itself was cancelled: so is the step
        task.cancel()
        raise
    if (took := time.perf_counter() - started) > SLOW_STOP_S:
        logger.warning("realtime.slow_stop", extra={"step": step, "seconds": round(took, 2)})


async def start_runtime(
    settings: Settings,
    source: MarketDataSource | None = None,
    hooks: RuntimeHooks | None = None,
) -> Runtime:
    """Build and start everything `settings.realtime_role` runs; `source` overrides the
    configured market data source (tests, replays; not on a replica, which has none)."""
    role = settings.realtime_role
    if role in REPLICA_ROLES and not settings.redis_url:
        raise ConfigurationError(
            f"REALTIME_ROLE={role.value} needs REDIS_URL: the ingest tier and its api replicas "
            "talk over Redis Streams"
        )
    if role is RealtimeRole.API and source is not None:
        raise ConfigurationError("REALTIME_ROLE=api follows the ingest tier: it takes no source")
    # Database work goes to threads (asyncio.to_thread); a writer may queue there for the
    # SQLite lock, so the default pool of cores + 4 threads would let a few waits stall all.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="realtime")
    )
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    read_sessions = make_read_session_factory(engine)
    cache = PriceCache(time.time_ns() // 1000 if role is RealtimeRole.INGEST else 0)
    ws_hub = WSHub(
        cache, interval_s=settings.sse_interval_ms / 1000, queue_size=settings.ws_queue_size
    )
    bus = make_bus(settings.redis_url)
    if role is RealtimeRole.API:
        source = None
    elif source is None:
        source = make_source(settings, sessions)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=read_sessions,
        cache=cache,
        source=source,
        hub=SSEHub(
            cache, interval_s=settings.sse_interval_ms / 1000, retry_ms=settings.sse_retry_ms
        ),
        ws_hub=ws_hub,
        bus=bus,
        bridge=BusBridge(bus, ws_hub),
        job_poller=None
        if settings.redis_url
        else JobPoller(read_sessions, ws_hub, interval_s=settings.job_poll_interval_ms / 1000),
        books=BookService(None),
        jobs=JobSupervisor(settings, sessions, bus if settings.redis_url else None),
    )
    if role is RealtimeRole.API:
        runtime.follower = MarketFollower(bus, cache, runtime.on_followed)
        runtime.books = BookService(runtime.follower)
    else:
        runtime.books = BookService(make_book_feed(settings, cache))
    runtime.sentiment = SentimentFeed(
        read_sessions,
        ws_hub,
        window_h=settings.sentiment_window_h,
        interval_s=settings.job_poll_interval_ms / 1000,
    )
    await runtime.sentiment.start()
    if source is not None:
        await _start_engines(runtime, source, hooks or RuntimeHooks())
    await runtime.hub.start()
    await runtime.ws_hub.start()
    await runtime.bridge.start()
    await runtime.books.start()  # on a replica: the follower's catch-up and tails
    if runtime.job_poller is not None:
        await runtime.job_poller.start()
    await runtime.jobs.start()
    runtime.status_task.start(runtime.publish_status())
    if settings.gc_full_every_s > 0:
        runtime.gc_policy = GCPolicy(settings.gc_full_every_s)
        runtime.gc_policy.apply()
        runtime.gc_task.start(runtime.gc_policy.run(runtime.hub.next_frame, asyncio.sleep))
    if source is not None:
        await source.start(runtime.on_tick)
    if role is RealtimeRole.INGEST:
        runtime.publisher = MarketPublisher(
            bus,
            cache,
            runtime.books,
            interval_s=settings.market_publish_ms / 1000,
            snapshot_every_s=settings.market_snapshot_s,
        )
        await runtime.publisher.start()
    logger.info(
        "realtime.started",
        extra={
            "role": role.value,
            "source": runtime.feed.name,
            "symbols": len(runtime.feed.symbols),
        },
    )
    return runtime


async def _start_engines(runtime: Runtime, source: MarketDataSource, hooks: RuntimeHooks) -> None:
    """What only a process with a source runs: live news, the pattern and strategy engines
    and, for a live source, the minute bars."""
    settings, sessions, bus = runtime.settings, runtime.sessions, runtime.bus
    if settings.news_source is NewsSource.ALPACA and hooks.store_news is None:
        raise ConfigurationError("NEWS_SOURCE=alpaca: this process cannot store news")
    if hooks.store_news is not None:
        runtime.news = await start_news_stream(settings, sessions, hooks.store_news)
    if settings.pattern_engine:
        config, strategy_id = await asyncio.to_thread(pattern_setup, settings, sessions)
        await asyncio.to_thread(warm_up, config)  # compile (or load) the kernels before ticks flow
        runtime.patterns = PatternEngine(config, capacity=max(64, 2 * len(source.symbols)))
        runtime.signals = SignalSink(
            bus,
            sessions,
            strategy_id,
            settings.pattern_strategy,
            flush_interval_s=settings.signal_flush_ms / 1000,
        )
        await runtime.signals.start()
        if settings.strategy_engine:
            assert runtime.sentiment is not None
            runtime.strategy = strategy_engine(
                settings,
                bus,
                runtime.patterns,
                sessions,
                runtime.sentiment.lookup,
                on_latency=hooks.on_suggestion_latency,
            )
            await runtime.strategy.start()
    if settings.persist_live_bars and source.name in LIVE_SOURCES:
        from realtime.bar_aggregator import MinuteBarAggregator  # pandas: live sources only

        runtime.bars = MinuteBarAggregator(sessions)
        await runtime.bars.start()
