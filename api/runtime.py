"""Everything the realtime process runs, started and stopped in order by the app's lifespan.

Built per app (no module singletons): engine and sessions, PriceCache, the
market data source, the SSE hub, the bus. `stop` leaves nothing running.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from api.engine_setup import pattern_setup, strategy_engine
from api.metrics import Metrics
from api.rate_limit import RateLimiter
from db.engine import make_engine, make_read_session_factory, make_session_factory
from models.market_data import Tick
from realtime.background import BackgroundTask
from realtime.book_service import BookService
from realtime.bus_bridge import BusBridge, JobPoller
from realtime.gc_policy import GCPolicy
from realtime.jobs import JobSupervisor
from realtime.news_stream import AlpacaNewsStream, start_news_stream
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
from services.settings import Settings
from tasks.import_news import import_news_rows

if TYPE_CHECKING:
    from realtime.bar_aggregator import MinuteBarAggregator

logger = logging.getLogger(__name__)

STATUS_EVERY_S = 5.0
KEPT_GRACE_S = 30.0  # how long `stop` waits for work that outlives its request
LIVE_SOURCES = frozenset({"alpaca"})  # whose ticks are real trades worth keeping as bars
SLOW_STOP_S = 2.0  # a stop step slower than this is logged with its name
THREADS = 64  # the worker threads database work runs on (see start_runtime)


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    engine: Engine
    sessions: sessionmaker[Session]  # may write (BEGIN IMMEDIATE on SQLite): keep them short
    read_sessions: sessionmaker[Session]  # reads only (deferred; a flush raises)
    cache: PriceCache
    source: MarketDataSource
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
    sentiment: SentimentFeed | None = None
    news: AlpacaNewsStream | None = None  # NEWS_SOURCE=alpaca: Alpaca's live news, stored
    status_task: BackgroundTask = field(default_factory=lambda: BackgroundTask("system-status"))
    gc_policy: GCPolicy | None = None
    gc_task: BackgroundTask = field(default_factory=lambda: BackgroundTask("gc-policy"))
    token_touched: dict[int, float] = field(default_factory=dict)  # api.auth: last_used_at
    kept: set[asyncio.Task[Any]] = field(default_factory=set)  # work that outlives its request
    llm_limiter: RateLimiter = field(default_factory=lambda: RateLimiter(10))

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Let `task` run to its end even if the request that started it goes away (a chat
        turn that places trades must store its reply); `stop` waits for it a while."""
        self.kept.add(task)
        task.add_done_callback(self.kept.discard)

    def status(self) -> dict[str, object]:
        """What `system_status` subscribers and operators see."""
        return {
            "source": self.source.name,
            "source_running": self.source.running,
            "symbols": len(self.source.symbols),
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
        self.metrics.ticks.inc()

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
        await _timed("books", self.books.stop())
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
    settings: Settings, metrics: Metrics, source: MarketDataSource | None = None
) -> Runtime:
    # Database work goes to threads (asyncio.to_thread); a writer may queue there for the
    # SQLite lock, so the default pool of cores + 4 threads would let a few waits stall all.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="realtime")
    )
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    read_sessions = make_read_session_factory(engine)
    cache = PriceCache()
    ws_hub = WSHub(
        cache, interval_s=settings.sse_interval_ms / 1000, queue_size=settings.ws_queue_size
    )
    bus = make_bus(settings.redis_url)
    runtime = Runtime(
        settings=settings,
        metrics=metrics,
        engine=engine,
        sessions=sessions,
        read_sessions=read_sessions,
        cache=cache,
        source=source or make_source(settings, sessions),
        hub=SSEHub(
            cache, interval_s=settings.sse_interval_ms / 1000, retry_ms=settings.sse_retry_ms
        ),
        ws_hub=ws_hub,
        bus=bus,
        bridge=BusBridge(bus, ws_hub),
        job_poller=None
        if settings.redis_url
        else JobPoller(read_sessions, ws_hub, interval_s=settings.job_poll_interval_ms / 1000),
        books=BookService(make_book_feed(settings, cache)),
        jobs=JobSupervisor(settings, sessions, bus if settings.redis_url else None),
        llm_limiter=RateLimiter(settings.api_llm_rate_per_minute),
    )
    metrics.count_from(
        "aitrader_book_events",
        "Order book messages applied and refused, gaps and resyncs",
        "event",
        runtime.books.counters,
    )
    runtime.sentiment = SentimentFeed(
        read_sessions,
        ws_hub,
        window_h=settings.sentiment_window_h,
        interval_s=settings.job_poll_interval_ms / 1000,
    )
    await runtime.sentiment.start()
    runtime.news = await start_news_stream(settings, sessions, import_news_rows)
    if runtime.news is not None:
        news = runtime.news
        metrics.count_from(
            "aitrader_news",
            "Live news items by what happened to them",
            "event",
            lambda: {
                "received": news.received,
                "inserted": news.inserted,
                "unchanged": news.unchanged,
                "rejected": news.rejected,
                "write_failed": news.write_failures,
                "dropped": news.dropped,
            },
        )
    if settings.pattern_engine:
        config, strategy_id = await asyncio.to_thread(pattern_setup, settings, sessions)
        await asyncio.to_thread(warm_up, config)  # compile (or load) the kernels before ticks flow
        runtime.patterns = PatternEngine(config, capacity=max(64, 2 * len(runtime.source.symbols)))
        runtime.signals = SignalSink(
            bus,
            sessions,
            strategy_id,
            settings.pattern_strategy,
            flush_interval_s=settings.signal_flush_ms / 1000,
        )
        metrics.count_from(
            "aitrader_signals",
            "Pattern signals by what happened to them",
            "event",
            runtime.signal_counters,
        )
        await runtime.signals.start()
        if settings.strategy_engine:
            runtime.strategy = strategy_engine(
                settings, bus, runtime.patterns, sessions, metrics, runtime.sentiment.lookup
            )
            await runtime.strategy.start()
    metrics.watch(metrics.cache_version, lambda: cache.version)
    metrics.watch(metrics.sse_clients, lambda: runtime.hub.clients)
    metrics.watch(metrics.ws_clients, lambda: runtime.ws_hub.clients)
    metrics.count_from(
        "aitrader_dropped_messages",
        "Messages dropped for slow clients",
        "channel",
        lambda: {"ws": runtime.ws_hub.dropped},
    )
    if settings.persist_live_bars and runtime.source.name in LIVE_SOURCES:
        from realtime.bar_aggregator import MinuteBarAggregator  # pandas: live sources only

        runtime.bars = MinuteBarAggregator(sessions)
        await runtime.bars.start()
    metrics.watch_labelled(metrics.bus_lag, lambda: runtime.bridge.lag_s)
    await runtime.hub.start()
    await runtime.ws_hub.start()
    await runtime.bridge.start()
    await runtime.books.start()
    if runtime.job_poller is not None:
        await runtime.job_poller.start()
    await runtime.jobs.start()
    runtime.status_task.start(runtime.publish_status())
    if settings.gc_full_every_s > 0:
        runtime.gc_policy = GCPolicy(settings.gc_full_every_s)
        runtime.gc_policy.apply()
        runtime.gc_task.start(runtime.gc_policy.run(runtime.hub.next_frame, asyncio.sleep))
    await runtime.source.start(runtime.on_tick)
    logger.info(
        "realtime.started",
        extra={"source": runtime.source.name, "symbols": len(runtime.source.symbols)},
    )
    return runtime
