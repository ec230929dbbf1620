"""A test double of Alpaca's market-data WebSocket server, at the network edge.

The real alpaca-py `StockDataStream` (or `NewsDataStream`, at `news_url`)
connects to it on 127.0.0.1, so the code under test is the code that talks to
Alpaca. It speaks the subset of the v2 stock stream that a trade subscriber uses,
and of the v1beta1 news stream, in msgpack (what alpaca-py sends and asks for
with `Content-Type: application/msgpack`):

* on connect: `[{"T": "success", "msg": "connected"}]`;
* `{"action": "auth", "key", "secret"}` -> `[{"T": "success", "msg": "authenticated"}]`,
  or `[{"T": "error", "code": 402, "msg": "auth failed"}]` for other credentials,
  403 when already authenticated, 406 when the key already has a live connection;
* `subscribe` / `unsubscribe` -> the full `{"T": "subscription", ...}` state
  (trades imply corrections and cancelErrors, as on Alpaca), 401 before auth;
* trades `{"T": "t", "S", "i", "x", "p", "s", "c", "t", "z"}` with `t` a msgpack
  Timestamp (extension type -1), which alpaca-py turns into an aware UTC datetime;
* news: `subscribe` with `news` (`["*"]` for all) -> `{"T": "subscription", "news": [...]}`;
  items `{"T": "n", "id", "headline", "summary", "author", "content", "url", "symbols",
  "source", "created_at", "updated_at"}`, the times msgpack Timestamps.

Alpaca has one connection limit per endpoint; this fake has one per server (a
second authenticated connection gets 406), so a test that streams trades and news
at once runs two servers.

Not here: quotes and bars data, JSON-encoded sessions, the 10 s auth timeout.
The server runs on its own event loop in a daemon thread; the public methods
are called from the test's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import msgpack
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

_T = TypeVar("_T")
_CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")


@dataclass
class _Session:
    authenticated: bool = False
    trades: set[str] = field(default_factory=set)
    news: set[str] = field(default_factory=set)


class FakeAlpacaStream:
    """Accepts one key/secret pair (changeable with `accept_credentials`)."""

    def __init__(self, key: str = "test-key", secret: str = "test-secret") -> None:
        self._credentials = (key, secret)
        self._lock = threading.Lock()
        self._sessions: dict[ServerConnection, _Session] = {}
        self._trade_id = 0
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server: Server | None = None
        self.port = 0
        self.connections_opened = 0
        self.disconnects = 0
        self.auth_attempts = 0
        self.auth_failures = 0
        self.subscribe_requests = 0
        self.unsubscribe_requests = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v2/iex"

    @property
    def news_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1beta1/news"

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._sessions)

    @property
    def subscribed_trades(self) -> frozenset[str]:
        """Trade symbols of every authenticated connection, together."""
        with self._lock:
            return frozenset(s for session in self._sessions.values() for s in session.trades)

    @property
    def subscribed_news(self) -> frozenset[str]:
        """News symbols (`*`: all) of every authenticated connection, together."""
        with self._lock:
            return frozenset(s for session in self._sessions.values() for s in session.news)

    def start(self) -> Self:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="fake-alpaca-stream", daemon=True
        )
        self._thread.start()
        if not ready.wait(5):
            raise RuntimeError("fake Alpaca stream did not start")
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def accept_credentials(self, key: str, secret: str) -> None:
        """From now on only this pair authenticates (a rotated key); open sessions stay."""
        self._credentials = (key, secret)

    def push_trade(self, symbol: str, price: float, size: float, ts: datetime) -> int:
        """Send a trade to every connection subscribed to `symbol`; return how many got it."""
        return self._call(self._broadcast_trade(symbol, price, size, ts))

    def push_news(self, item: Mapping[str, Any]) -> int:
        """Send a news item to every connection subscribed to `*` or one of its symbols;
        return how many got it. `item` needs `id`, `headline`, `symbols` and `created_at`
        (a datetime); the rest defaults (`updated_at` to `created_at`, texts to "")."""
        return self._call(self._broadcast_news(item))

    def drop_connections(self) -> int:
        """Abort every connection's TCP transport (no close frame), like a network drop."""

        async def abort() -> int:
            for ws in list(self._sessions):
                ws.transport.abort()
            return len(self._sessions)

        return self._call(abort())

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=5)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(self._open())
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        self._loop.close()

    async def _open(self) -> Server:
        return await serve(self._handle, "127.0.0.1", 0, compression=None, close_timeout=1)

    async def _handle(self, ws: ServerConnection) -> None:
        session = _Session()
        with self._lock:
            self._sessions[ws] = session
            self.connections_opened += 1
        try:
            await ws.send(_pack({"T": "success", "msg": "connected"}))
            async for frame in ws:
                message = msgpack.unpackb(frame) if isinstance(frame, bytes) else {}
                await ws.send(_pack(self._reply(session, message)))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                del self._sessions[ws]
                self.disconnects += 1

    def _reply(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        action = message.get("action")
        if action == "auth":
            return self._authenticate(session, message)
        if action not in ("subscribe", "unsubscribe"):
            return _error(400, "invalid syntax")
        if not session.authenticated:
            return _error(401, "not authenticated")
        if "news" in message:
            return self._subscribe_news(session, action, set(message["news"]))
        with self._lock:
            symbols = set(message.get("trades", []))
            if action == "subscribe":
                self.subscribe_requests += 1
                session.trades |= symbols
            else:
                self.unsubscribe_requests += 1
                session.trades -= symbols
        trades = sorted(session.trades)
        reply: dict[str, Any] = {"T": "subscription", **{c: [] for c in _CHANNELS}}
        return reply | {"trades": trades, "corrections": trades, "cancelErrors": trades}

    def _subscribe_news(self, session: _Session, action: str, symbols: set[str]) -> dict[str, Any]:
        with self._lock:
            if action == "subscribe":
                self.subscribe_requests += 1
                session.news |= symbols
            else:
                self.unsubscribe_requests += 1
                session.news -= symbols
            return {"T": "subscription", "news": sorted(session.news)}

    def _authenticate(self, session: _Session, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.auth_attempts += 1
            if session.authenticated:
                return _error(403, "already authenticated")
            if (message.get("key"), message.get("secret")) != self._credentials:
                self.auth_failures += 1
                return _error(402, "auth failed")
            if any(s.authenticated for s in self._sessions.values()):
                return _error(406, "connection limit exceeded")
            session.authenticated = True
        return {"T": "success", "msg": "authenticated"}

    async def _broadcast_trade(self, symbol: str, price: float, size: float, ts: datetime) -> int:
        self._trade_id += 1
        trade = {
            "T": "t",
            "S": symbol,
            "i": self._trade_id,
            "x": "V",
            "p": price,
            "s": size,
            "c": ["@"],
            "t": msgpack.Timestamp.from_datetime(ts),
            "z": "C",
        }
        with self._lock:
            targets = [ws for ws, s in self._sessions.items() if {symbol, "*"} & s.trades]
        delivered = 0
        for ws in targets:
            try:
                await ws.send(_pack(trade))
                delivered += 1
            except ConnectionClosed:
                pass  # dropped meanwhile: like Alpaca, nothing is buffered for a reconnect
        return delivered

    async def _broadcast_news(self, item: Mapping[str, Any]) -> int:
        created = item["created_at"]
        news = {
            "T": "n",
            "summary": "",
            "author": "",
            "content": "",
            "url": None,
            "source": "benzinga",
            **item,
            "symbols": list(item["symbols"]),
        }
        news.setdefault("updated_at", created)
        for name in ("created_at", "updated_at"):
            news[name] = msgpack.Timestamp.from_datetime(news[name].astimezone(UTC))
        wanted = {"*", *news["symbols"]}
        with self._lock:
            targets = [ws for ws, s in self._sessions.items() if wanted & s.news]
        delivered = 0
        for ws in targets:
            try:
                await ws.send(_pack(news))
                delivered += 1
            except ConnectionClosed:
                pass  # dropped meanwhile: nothing is buffered for a reconnect
        return delivered


def _error(code: int, msg: str) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": msg}


def _pack(message: dict[str, Any]) -> bytes:
    """Alpaca sends every message in an array; control messages alone."""
    return bytes(msgpack.packb([message]))
