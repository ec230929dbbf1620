"""Fan-out of topics to WebSocket clients, each with its own bounded queue.

Topics: `market_data` (price changes from the PriceCache, once per interval),
`trading_signals`, `suggestions`, `job_updates`, `system_status`, `orders`,
`fills` (bus messages, published by whoever bridges the bus), `sentiment`
(stored symbol sentiment, from realtime/sentiment_feed.py). A client subscribes to topics
with an optional symbol filter. Every message is `{type, ts, data}` JSON,
serialised once per distinct filter, never once per client.

A slow client never holds anyone up: its queue is bounded, and when it is
full the oldest message is dropped and counted. For `market_data` that is
harmless (the next message carries newer prices); for the others the drop
counter says what was lost.

Keyed messages (`publish(..., key=)`; `trading_signals` uses the signal's
identity, `models.bus.signal_key`) are sent at most once per key: the hub
keeps the last `recent_size` of each keyed topic, skips a repeat (a bus
publication retried after an outage that had landed after all) and counts it
in `duplicates`. The same record lets a subscriber catch up (`replay`):
stored messages first, then what the hub published meanwhile, then live ones,
each key once across the seam.

The socket itself (accept, read, write) lives in `api/routers/ws.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Awaitable, Callable, Collection, Hashable, Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from models.market_data import PriceSnapshot
from realtime.background import BackgroundTask
from realtime.pacer import ChangePacer
from realtime.price_cache import PriceCache
from realtime.ws_recent import Backlog, RecentMessages

logger = logging.getLogger(__name__)


class Topic(StrEnum):
    MARKET_DATA = "market_data"
    TRADING_SIGNALS = "trading_signals"
    JOB_UPDATES = "job_updates"
    SYSTEM_STATUS = "system_status"
    ORDERS = "orders"
    FILLS = "fills"
    SUGGESTIONS = "suggestions"
    SENTIMENT = "sentiment"


SymbolFilter = frozenset[str] | None  # None: every symbol


class WSClient:
    """One connection's subscriptions and outbound queue (already-serialised messages)."""

    _ids = itertools.count(1)

    def __init__(self, queue_size: int) -> None:
        self.id = next(self._ids)
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.topics: dict[Topic, SymbolFilter] = {}
        self.replayed: dict[Topic, set[Hashable]] = {}  # keys a replay sent, not yet seen live
        self.dropped = 0
        self._replay_share = max(1, queue_size // 2)  # of the queue a replay may fill
        self._room = asyncio.Event()

    def wants(self, topic: Topic, symbol: str | None) -> bool:
        if topic not in self.topics:
            return False
        return _admits(self.topics[topic], symbol)

    def has_had(self, topic: Topic, key: Hashable) -> bool:
        """Whether a replay already sent `key`; the first live copy after it is then skipped."""
        sent = self.replayed.get(topic)
        if sent is None or key not in sent:
            return False
        sent.discard(key)  # later copies are the hub's `recent` business
        return True

    async def next(self) -> str:
        """The next message to write to the socket (the connection's writer loop calls this)."""
        text = await self.queue.get()
        if self.queue.qsize() < self._replay_share:
            self._room.set()
        return text

    async def put_paced(self, text: str) -> None:
        """Queue a replayed message once there is room for it in half the queue.

        A replay may be longer than the queue; pacing it on the writer keeps
        the other half for live topics, so neither pushes the other out unless
        the client is really too slow.
        """
        while self.queue.qsize() >= self._replay_share:
            self._room.clear()
            await self._room.wait()
        self.offer(text)

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
        self,
        cache: PriceCache,
        *,
        interval_s: float = 0.5,
        queue_size: int = 256,
        recent_size: int = 4096,
    ) -> None:
        self._cache = cache
        self._pacer = ChangePacer(interval_s)
        self.queue_size = queue_size
        self._recent_size = recent_size
        self._clients: dict[int, WSClient] = {}
        self._recent: dict[Topic, RecentMessages] = {}
        self._task = BackgroundTask("ws-hub")
        self._version = 0
        self.dropped = 0
        self.published = 0
        self.duplicates = 0  # keyed messages published again and not sent
        self.replayed = 0  # messages sent by `replay` (stored or published before going live)

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
            client.replayed.pop(topic, None)
            if topic is Topic.MARKET_DATA:
                _, snaps = self._cache.snapshot(symbols)
                self._deliver(client, envelope(Topic.MARKET_DATA.value, _rows(snaps)))

    def unsubscribe(self, client: WSClient, topics: Iterable[Topic]) -> None:
        for topic in topics:
            client.topics.pop(topic, None)
            client.replayed.pop(topic, None)

    async def replay(
        self,
        client: WSClient,
        topic: Topic,
        symbols: SymbolFilter,
        load: Callable[[], Awaitable[Backlog]],
    ) -> int:
        """Catch `client` up on keyed `topic`, then subscribe it; returns how many were sent.

        Sends the backlog `load` reads (stored messages, oldest first), then
        what the hub published on `topic` at or after `backlog.since` that the
        backlog lacks (rows not written yet; messages published while this
        ran), then a `caught_up` message, then live ones. The last look at
        `recent` and the subscription happen without yielding to the loop, so
        nothing falls between them. Keys sent here are remembered on the
        client, so the first live copy of one (a publication an outage held
        back while its row was already stored) is not sent again. If more was
        published while this ran than `recent` holds, the missed ones are
        counted as dropped for the client.
        """
        self.unsubscribe(client, [topic])
        recent = self._recent_of(topic)
        mark = recent.seq  # everything after this must reach the client
        backlog = await load()
        sent: set[Hashable] = set()
        for message in backlog.messages:
            if message.key not in sent:
                await client.put_paced(envelope(topic.value, message.data, message.ts))
                sent.add(message.key)
        seen = 0
        while True:
            lost = recent.lost_after(max(seen, mark))
            if lost:
                client.dropped += lost
                self.dropped += lost
            fresh = recent.after(seen)
            seen = fresh[-1].seq if fresh else seen
            catch_up = [
                p
                for p in fresh
                if p.ts >= backlog.since and p.key not in sent and _admits(symbols, p.symbol)
            ]
            if not catch_up:
                break
            for published in catch_up:
                await client.put_paced(published.text)
                sent.add(published.key)
        client.topics[topic] = symbols
        client.replayed[topic] = {k for k in sent if k not in recent}  # the rest: `recent` skips
        self.replayed += len(sent)
        caught_up = {
            "topic": topic.value,
            "since": backlog.since.isoformat(),
            "replayed": len(sent),
            "truncated": backlog.truncated,
        }
        self.send(client, "caught_up", caught_up)
        return len(sent)

    def send(self, client: WSClient, type_: str, data: Any) -> None:
        """A direct reply to one client (pong, error, subscription confirmation)."""
        self._deliver(client, envelope(type_, data))

    def publish(
        self,
        topic: Topic,
        data: Any,
        *,
        symbol: str | None = None,
        ts: datetime | None = None,
        key: Hashable | None = None,
    ) -> int:
        """Send `data` on `topic` to every subscriber whose filter admits `symbol`.

        With a `key`, a message whose key the hub sent recently is skipped
        (counted in `duplicates`), and a client that a replay already gave
        it does not get it again.
        """
        stamp = ts or datetime.now(UTC)
        recent = self._recent_of(topic) if key is not None else None
        if recent is not None and key in recent:
            self.duplicates += 1
            return 0
        text = envelope(topic.value, data, stamp)
        targets = [
            c
            for c in self._clients.values()
            if c.wants(topic, symbol) and (key is None or not c.has_had(topic, key))
        ]
        for client in targets:
            self._deliver(client, text)
        if recent is not None:
            recent.add(key, symbol, stamp, text)
        self.published += 1
        return len(targets)

    def _recent_of(self, topic: Topic) -> RecentMessages:
        if topic not in self._recent:
            self._recent[topic] = RecentMessages(self._recent_size)
        return self._recent[topic]

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


def _admits(symbols: SymbolFilter, symbol: str | None) -> bool:
    return symbols is None or symbol is None or symbol in symbols
