"""Live trades from Alpaca's market-data WebSocket, as ticks: a `MarketDataSource`.

Owns one alpaca-py `StockDataStream` per start/stop cycle, the asyncio task
that runs it on our event loop, and a one-thread worker for live subscription
changes. Every trade becomes a `Tick` with Alpaca's price, size and event time
(aware UTC). alpaca-py owns the wire: msgpack frames, the login, and
reconnecting after a dropped connection (0.5-1 s after a first drop, backing
off to 30 s), re-subscribing every symbol it holds.

How this sits on alpaca-py 0.44 (hence the pin to 0.44.x):

* `StockDataStream.run()` wraps `asyncio.run`, so it cannot share our loop; the
  task runs the coroutine `run()` wraps, `_run_forever()` (private).
* While connected, `subscribe_trades`/`unsubscribe_trades` wait on a future of
  the stream's loop (they are meant to be called from another thread), so
  `add_symbol`/`remove_symbol` hand them to our worker thread, in order. Trades
  are also filtered against our own symbol set, so a removal takes effect at
  once even if the server still sends a few trades.
* alpaca-py retries a refused login for ever. `_LoginReportingStream` learns each
  login's outcome and stops the stream when Alpaca refused the key (402) or its
  feed (409) (realtime/sources/alpaca_login.py).

Errors:

* AITraderError
  x MarketDataAuthError   Alpaca refused the key, or the key's access to the feed

Not here: quotes and bars (ticks are rolled into bars downstream), market
hours, and choosing a feed the key is entitled to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from functools import partial
from typing import Any, Self

from alpaca.data.enums import DataFeed
from alpaca.data.live.stock import StockDataStream
from alpaca.data.models import Trade

from models.errors import AITraderError
from models.market_data import Tick
from realtime.sources.alpaca_login import LoginReporting
from realtime.sources.base import TickHandler
from services.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_CONNECT_TIMEOUT_S = 10.0


class MarketDataAuthError(AITraderError):
    """Alpaca refused the API key, or the key's access to the requested feed."""


class AlpacaSource:
    """Trades of a changing set of symbols from one Alpaca feed ("iex" or "sip").

    `start` returns once the stream has logged in, raises `MarketDataAuthError`
    if Alpaca refuses the credentials, and returns after `connect_timeout_s`
    (with a warning) if Alpaca cannot be reached: alpaca-py keeps retrying then.
    Started without symbols, the source connects on its first `add_symbol`. A
    refusal after a reconnect (a revoked key) is logged as `alpaca.auth_failed`
    and ends the stream: `running` turns False. `stop` does not raise it again.
    If `on_tick` raises (the contract says it must not), alpaca-py logs it and
    the stream goes on. Call every method from the event loop's thread.

    `url_override` is the whole stream URL, feed path included
    (`wss://proxy.example/v2/iex`); it exists for proxies and tests.
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        symbols: Iterable[str],
        *,
        feed: str = "iex",
        url_override: str | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        if feed not in (DataFeed.IEX.value, DataFeed.SIP.value):
            raise ValueError(f"unknown Alpaca stock feed {feed!r}: use 'iex' or 'sip'")
        if connect_timeout_s <= 0:
            raise ValueError(f"need connect_timeout_s > 0, got {connect_timeout_s}")
        self.feed = DataFeed(feed)
        self.connect_timeout_s = connect_timeout_s
        self._api_key = api_key
        self._secret_key = secret_key
        self._url_override = url_override
        self._symbols = {_normalise(s) for s in symbols}
        self._on_tick: TickHandler | None = None
        self._stream: _LoginReportingStream | None = None
        self._task: asyncio.Task[None] | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._changes: set[asyncio.Future[None]] = set()
        self._starting = False

    @classmethod
    def from_settings(cls, settings: Settings, symbols: Iterable[str], **options: Any) -> Self:
        """Keys, feed and URL from settings (ALPACA_*); `options` override the constructor's."""
        key, secret = settings.alpaca_keys("MARKET_DATA_SOURCE=alpaca")
        options.setdefault("feed", settings.alpaca_data_feed.value)
        options.setdefault("url_override", settings.alpaca_stream_url)
        return cls(key, secret, symbols, **options)

    @property
    def running(self) -> bool:
        """Started, and the stream has not ended (it has not, while it reconnects)."""
        return self._stream is not None and (self._task is None or not self._task.done())

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    async def start(self, on_tick: TickHandler) -> None:
        if self.running:
            raise RuntimeError("alpaca source is already running; stop it first")
        await self.stop()  # what is left of a stream that ended on a refusal
        self._on_tick = on_tick
        self._stream = _LoginReportingStream(
            self._api_key, self._secret_key, feed=self.feed, url_override=self._url_override
        )
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alpaca-subscriptions")
        if not self._symbols:
            logger.info("alpaca.waiting_for_symbols", extra={"feed": self.feed.value})
            return
        self._starting = True
        try:
            task = self._run_stream(self._stream, sorted(self._symbols))
            await self._await_login(self._stream, task)
        except asyncio.CancelledError:
            await self.stop()  # start() was cancelled: leave nothing running
            raise
        finally:
            self._starting = False
        logger.info(
            "alpaca.started", extra={"symbols": len(self._symbols), "feed": self.feed.value}
        )

    async def stop(self) -> None:
        stream, task, worker = self._stream, self._task, self._worker
        self._stream = self._task = self._worker = None
        if stream is None:
            return
        await stream.stop_ws()  # no reconnect from here on
        try:
            if task is not None:
                task.cancel()
                await task
        except asyncio.CancelledError:
            # Ours was cancelled as asked; re-raise only if stop() itself is being cancelled.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except MarketDataAuthError:
            pass  # raised from start() or logged when it happened
        finally:
            await stream.close()
            # Pending changes finish fast now (no socket to write to), so the join is short.
            await asyncio.gather(*self._changes, return_exceptions=True)
            if worker is not None:
                worker.shutdown(wait=True)
        logger.info("alpaca.stopped")

    def add_symbol(self, symbol: str) -> None:
        symbol = _normalise(symbol)
        if symbol in self._symbols:
            return
        self._symbols.add(symbol)
        if self._stream is None:
            return  # subscribed by start()
        if self._task is None:
            self._run_stream(self._stream, [symbol])  # started without symbols: connect now
            return
        self._change(partial(self._stream.subscribe_trades, self._on_trade, symbol))

    def remove_symbol(self, symbol: str) -> None:
        symbol = _normalise(symbol)
        if symbol not in self._symbols:
            return
        self._symbols.discard(symbol)
        if self._stream is not None and self._task is not None:
            self._change(partial(self._stream.unsubscribe_trades, symbol))

    def _run_stream(self, stream: _LoginReportingStream, symbols: list[str]) -> asyncio.Task[None]:
        """Register `symbols` (the client is not connected yet, so nothing is sent) and run it."""
        stream.subscribe_trades(self._on_trade, *symbols)
        self._task = asyncio.get_running_loop().create_task(self._run(stream), name="alpaca-stream")
        self._task.add_done_callback(self._report_end)
        return self._task

    async def _run(self, stream: _LoginReportingStream) -> None:
        await stream._run_forever()
        if stream.refusal is not None:
            raise MarketDataAuthError(
                f"Alpaca refused the login to the {self.feed.value} stream "
                f"({stream.refusal}): check ALPACA_API_KEY / ALPACA_SECRET_KEY and that "
                f"the key's data plan includes the {self.feed.value} feed"
            ) from stream.refusal

    async def _await_login(self, stream: _LoginReportingStream, task: asyncio.Task[None]) -> None:
        login = asyncio.ensure_future(stream.logged_in.wait())
        try:
            await asyncio.wait(
                {login, task}, timeout=self.connect_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            login.cancel()
            await asyncio.gather(login, return_exceptions=True)
        if task.cancelled():
            return  # stop() was called meanwhile
        if task.done():
            error = task.exception()
            await self.stop()
            if error is not None:
                raise error
            raise RuntimeError("the Alpaca stream ended before it logged in")
        if not stream.logged_in.is_set():
            logger.warning(
                "alpaca.not_logged_in_yet",
                extra={"after_s": self.connect_timeout_s, "feed": self.feed.value},
            )

    def _report_end(self, task: asyncio.Task[None]) -> None:
        """Log how a stream ended by itself; start() raises instead while it waits."""
        if task.cancelled() or self._starting:
            return
        error = task.exception()
        if isinstance(error, MarketDataAuthError):
            logger.error("alpaca.auth_failed", extra={"reason": str(error)})
        elif error is not None:
            logger.error("alpaca.stream_failed", exc_info=error)

    def _change(self, call: Callable[[], None]) -> None:
        """Run a blocking (un)subscribe on the worker, in order; a failure is logged, not raised."""
        change = asyncio.get_running_loop().run_in_executor(self._worker, call)
        self._changes.add(change)
        change.add_done_callback(self._change_done)

    def _change_done(self, change: asyncio.Future[None]) -> None:
        self._changes.discard(change)
        if not change.cancelled() and (error := change.exception()) is not None:
            # The symbol set is still right locally; alpaca-py resends its list on reconnect.
            logger.warning("alpaca.subscription_change_failed", extra={"reason": repr(error)})

    async def _on_trade(self, trade: Trade | dict[Any, Any]) -> None:
        # raw_data=False, so alpaca-py hands over parsed Trades; a dict would be a raw frame.
        if not isinstance(trade, Trade) or trade.symbol not in self._symbols:
            return
        if self._on_tick is not None:
            self._on_tick(
                Tick(trade.symbol, trade.price, trade.size, trade.timestamp.astimezone(UTC))
            )


class _LoginReportingStream(LoginReporting, StockDataStream):
    """A `StockDataStream` that records each login's outcome and gives up on a refusal."""


def _normalise(symbol: str) -> str:
    return symbol.strip().upper()
