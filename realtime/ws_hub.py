"""Fan-out of topics to WebSocket clients, each with its own bounded queue.

Topics: `market_data` (price changes from the PriceCache, once per interval),
`trading_signals`, `job_updates`, `system_status`, `orders`, `fills` (bus
messages, published by whoever bridges the bus). A client subscribes to topics
with an optional symbol filter. Every message is `{type, ts, data}` JSON,
serialised once per distinct filter, never once per client.

A slow client never holds anyone up: its queue is bounded, and when it is
full the oldest message is dropped and counted. For `market_data` that is
harmless (the next message carries newer prices); for the others the drop
counter says what was lost.

The socket itself (accept, read, write) lives in `api/routers/ws.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from models.market_data import PriceSnapshot
from realtime.background import BackgroundTask
from realtime.pacer import ChangePacer
from realtime.price_cache import PriceCache

logger = logging.getLogger(__name__)


class Topic(StrEnum):
    MARKET_DATA = "market_data"
    TRADING_SIGNALS = "trading_signals"
    JOB_UPDATES = "job_updates"
    SYSTEM_STATUS = "system_status"
    ORDERS = "orders"
    FILLS = "fills"


SymbolFilter = frozenset[str] | None  # None: every symbol


class WSClient:
    """One connection's subscriptions and outbound queue (already-serialised messages)."""

    _ids = itertools.count(1)

    def __init__(self, queue_size: int) -> None:
        self.id = next(self._ids)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.topics: dict[Topic, SymbolFilter] = {}
        self.dropped = 0

    def wants(self, topic: Topic, symbol: str | None) -> bool:
        if topic not in self.topics:
            return False
        symbols = self.topics[topic]
        return symbols is None or symbol is None or symbol in symbols

    def offer(self, text: str) -> bool:
        """Queue a message; if full, drop the oldest first. Returns False if one was dropped."""
        try:
            self.queue.put_nowait(text)
            return True
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(text)
            self.dropped += 1
            return False


class WSHub:
    def __init__(
        self, cache: PriceCache, *, interval_s: float = 0.5, queue_size: int = 256
    ) -> None:
        self._cache = cache
        self._pacer = ChangePacer(interval_s)
        self.queue_size = queue_size
        self._clients: dict[int, WSClient] = {}
        self._task = BackgroundTask("ws-hub")
        self._version = 0
        self.dropped = 0
        self.published = 0

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def running(self) -> bool:
        return self._task.running

    def notify(self) -> None:
        """The cache changed: push prices soon (at most once per interval)."""
        self._pacer.notify()

    async def start(self) -> None:
        self._version = self._cache.version
        self._task.start(self._market_data_loop())

    async def stop(self) -> None:
        await self._task.stop()
        self._clients.clear()

    def connect(self) -> WSClient:
        client = WSClient(self.queue_size)
        self._clients[client.id] = client
        return client

    def disconnect(self, client: WSClient) -> None:
        self._clients.pop(client.id, None)

    def subscribe(self, client: WSClient, topics: Iterable[Topic], symbols: SymbolFilter) -> None:
        """Subscribe; a `market_data` subscriber immediately gets the current prices."""
        for topic in topics:
            client.topics[topic] = symbols
            if topic is Topic.MARKET_DATA:
                _, snaps = self._cache.snapshot(symbols)
                self._deliver(client, envelope(Topic.MARKET_DATA.value, _rows(snaps)))

    def unsubscribe(self, client: WSClient, topics: Iterable[Topic]) -> None:
        for topic in topics:
            client.topics.pop(topic, None)

    def send(self, client: WSClient, type_: str, data: Any) -> None:
        """A direct reply to one client (pong, error, subscription confirmation)."""
        self._deliver(client, envelope(type_, data))

    def publish(
        self, topic: Topic, data: Any, *, symbol: str | None = None, ts: datetime | None = None
    ) -> int:
        """Send `data` on `topic` to every subscriber whose filter admits `symbol`."""
        text = envelope(topic.value, data, ts)
        targets = [c for c in self._clients.values() if c.wants(topic, symbol)]
        for client in targets:
            self._deliver(client, text)
        self.published += 1
        return len(targets)

    def _deliver(self, client: WSClient, text: str) -> None:
        if not client.offer(text):
            self.dropped += 1

    async def _market_data_loop(self) -> None:
        while True:
            await self._pacer.wait()
            if self._cache.version == self._version:
                continue
            self._version, changed = self._cache.changed_since(self._version)
            self._fan_out_prices(changed)
            self._pacer.published()

    def _fan_out_prices(self, changed: list[PriceSnapshot]) -> None:
        by_filter: dict[SymbolFilter, str | None] = {}
        rows = {s.symbol: s.model_dump(mode="json") for s in changed}
        for client in list(self._clients.values()):
            if Topic.MARKET_DATA not in client.topics:
                continue
            symbols = client.topics[Topic.MARKET_DATA]
            if symbols not in by_filter:
                picked = [r for sym, r in rows.items() if symbols is None or sym in symbols]
                by_filter[symbols] = envelope(Topic.MARKET_DATA.value, picked) if picked else None
            text = by_filter[symbols]
            if text is not None:
                self._deliver(client, text)


def envelope(type_: str, data: Any, ts: datetime | None = None) -> str:
    """The wire form of every message: `{"type", "ts", "data"}`."""
    return json.dumps(
        {"type": type_, "ts": (ts or datetime.now(UTC)).isoformat(), "data": data},
        separators=(",", ":"),
        default=str,
    )


def _rows(snaps: Collection[PriceSnapshot]) -> list[dict[str, Any]]:
    return [s.model_dump(mode="json") for s in snaps]
