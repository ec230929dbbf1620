"""The market-data tier's streams: the ingest process publishes, api replicas follow.

With `REALTIME_ROLE=ingest` one process runs the source, the engines and the
books; any number of `api` replicas serve clients. Between them are three
Redis streams (names in models/bus.py):

* `market:prices`: every `MARKET_PUBLISH_MS`, the PriceCache entries changed
  since the last message, as they are (versions included). A replica applies
  them with `PriceCache.apply_rows`, so all replicas answer the same prices at
  the same version. The messages coalesce like a slow SSE client does: a
  replica gets each symbol's latest state, not every tick, and a publish that
  failed (Redis away) is folded into the next one instead of queued.
* `market:books`: in the same step, a full snapshot (top `BOOK_LEVELS` per
  side) of each venue book that changed. Snapshots, not deltas: a replica
  never sees a sequence gap and never has to ask the ingest tier for anything.
* `market:snapshot`: every `MARKET_SNAPSHOT_S`, everything (all prices, all
  books) and the ids of the last prices and books messages before it, kept to
  the newest `SNAPSHOTS_KEPT` (the other two keep `UPDATES_KEPT`, ten
  seconds at the fastest rate). A replica started late applies the newest one
  and tails the other two streams from those ids; it also applies each later
  snapshot, so one that fell further behind than the streams keep (their
  entries trimmed) is whole again within one snapshot interval.

Replicas read with `Bus.tail` (a fan-out read, no consumer group): every
replica sees every message. Applying twice is harmless (an entry no newer
than the one held is skipped), which is what lets a replica read a snapshot
and the updates it overlaps in any order.

A restarted ingest process starts its versions from the clock (see
realtime/runtime.py), so they keep counting up past what replicas hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from models.bus import MARKET_BOOKS, MARKET_PRICES, MARKET_SNAPSHOT, BusMessage
from realtime.background import BackgroundTask
from realtime.book_service import BookService
from realtime.order_book import BookSnapshot, Level
from realtime.price_cache import PriceCache, Row
from realtime.sources.book_base import BookHandler
from services.bus import Bus, BusUnavailableError, Delivery

logger = logging.getLogger(__name__)

BOOK_LEVELS = 50  # per side and venue: the most the book API shows
SNAPSHOTS_KEPT = 3
# Messages kept of `market:prices` and `market:books`: replicas need only what follows the
# newest snapshot (a second or two, 50 messages a second at most), and a books message is
# tens of KB. Under the bus's own cap (10,000) Redis grew by ~250 MB over 40 minutes.
UPDATES_KEPT = 500
FIRST = "0-0"  # a tail from here reads everything the stream still holds


# --- encoding: compact JSON lists, the same on both sides ------------------------------


def encode_rows(rows: list[Row]) -> list[list[Any]]:
    return [[s, p, prev, day_open, ts.isoformat(), v] for s, p, prev, day_open, ts, v in rows]


def decode_rows(data: list[list[Any]]) -> list[Row]:
    return [
        (str(s), float(p), None if prev is None else float(prev), float(o), _ts(ts), int(v))
        for s, p, prev, o, ts, v in data
    ]


def encode_book(book: BookSnapshot) -> dict[str, Any]:
    return {
        "symbol": book.symbol,
        "venue": book.venue,
        "seq": book.seq,
        "ts": book.ts.isoformat(),
        "bids": [[level.price, level.size] for level in book.bids],
        "asks": [[level.price, level.size] for level in book.asks],
    }


def decode_book(data: dict[str, Any]) -> BookSnapshot:
    return BookSnapshot(
        symbol=str(data["symbol"]),
        venue=str(data["venue"]),
        seq=int(data["seq"]),
        ts=_ts(data["ts"]),
        bids=[Level(float(p), float(s)) for p, s in data["bids"]],
        asks=[Level(float(p), float(s)) for p, s in data["asks"]],
    )


def _ts(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


# --- the ingest side --------------------------------------------------------------------


class MarketPublisher:
    """Publishes the ingest process's prices and books for its replicas (see module doc).

    Counters: `published` messages, `publish_failed` steps that could not reach the
    bus (their changes go out with the next step), `snapshots` published.
    """

    def __init__(
        self,
        bus: Bus,
        cache: PriceCache,
        books: BookService,
        *,
        interval_s: float,
        snapshot_every_s: float,
    ) -> None:
        self._bus = bus
        self._cache = cache
        self._books = books
        self._interval_s = interval_s
        self._snapshot_every_s = snapshot_every_s
        self._task = BackgroundTask("market-publisher")
        self._version = 0  # of the newest entry published
        self._unsent_books: set[tuple[str, str]] = set()
        self._ids = {MARKET_PRICES: FIRST, MARKET_BOOKS: FIRST}  # the newest message of each
        self._next_snapshot = 0.0
        self.published = 0
        self.publish_failed = 0
        self.snapshots = 0

    @property
    def running(self) -> bool:
        return self._task.running

    async def start(self) -> None:
        self._task.start(self._run())

    async def stop(self) -> None:
        await self._task.stop()

    def counters(self) -> dict[str, float]:
        return {
            "published": self.published,
            "publish_failed": self.publish_failed,
            "snapshots": self.snapshots,
        }

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.step()
            except BusUnavailableError:
                self.publish_failed += 1  # what was not sent is still unsent: next step
            except Exception:  # a bug must not end the tier's only publisher silently
                logger.exception("market.publish_failed")
                self.publish_failed += 1

    async def step(self) -> None:
        """Publish what changed since the last step, and a snapshot when one is due."""
        version, rows = self._cache.rows_since(self._version)
        if rows:
            rows.sort(key=lambda row: row[5])
            message = BusMessage(type="prices", data={"rows": encode_rows(rows)})
            self._ids[MARKET_PRICES] = await self._bus.publish(
                MARKET_PRICES, message, maxlen=UPDATES_KEPT
            )
            self._version = version
            self.published += 1
        self._unsent_books |= self._books.take_changed()
        if self._unsent_books:
            books = [self._book(*key) for key in sorted(self._unsent_books)]
            message = BusMessage(type="books", data={"books": [b for b in books if b]})
            self._ids[MARKET_BOOKS] = await self._bus.publish(
                MARKET_BOOKS, message, maxlen=UPDATES_KEPT
            )
            self._unsent_books.clear()
            self.published += 1
        if time.monotonic() >= self._next_snapshot:
            await self.publish_snapshot()

    async def publish_snapshot(self) -> None:
        """Everything, whole, with the ids of the last prices and books messages before it
        (due every `snapshot_every_s`; from the first step on)."""
        _, rows = self._cache.rows_since(0)
        keys = [
            (symbol, venue)
            for symbol in self._books.symbols()
            if (book := self._books.registry.get(symbol)) is not None
            for venue in sorted(book.books)
        ]
        data = {
            "rows": encode_rows(sorted(rows, key=lambda row: row[5])),
            "books": [b for b in (self._book(*key) for key in keys) if b],
            "prices_id": self._ids[MARKET_PRICES],
            "books_id": self._ids[MARKET_BOOKS],
        }
        await self._bus.publish(
            MARKET_SNAPSHOT, BusMessage(type="snapshot", data=data), maxlen=SNAPSHOTS_KEPT
        )
        self.snapshots += 1
        self._next_snapshot = time.monotonic() + self._snapshot_every_s

    def _book(self, symbol: str, venue: str) -> dict[str, Any] | None:
        book = self._books.venue_book(symbol, venue)
        if book is None or not book.has_snapshot or book.needs_resync or book.ts is None:
            return None  # out of sync here: replicas keep their last good copy
        bids, asks = book.depth(BOOK_LEVELS)
        return encode_book(BookSnapshot(symbol, venue, book.seq, bids, asks, book.ts))


# --- the replica side -------------------------------------------------------------------


class MarketFollower:
    """An api replica's market data: the ingest tier's streams into its own PriceCache and
    books. A `BookFeed` (start it through `BookService`), so the replica's books and book
    API are the embedded process's own; `on_prices(n)` is told after each applied batch.

    `lag_s`: now minus the publication time of the newest prices message applied, as of
    that message (how far behind the ingest tier this replica serves); `applied` rows,
    `messages` read, `snapshots` applied, `unreadable` messages skipped.
    """

    name = "market-stream"

    def __init__(
        self,
        bus: Bus,
        cache: PriceCache,
        on_prices: Callable[[int], None],
        *,
        block_ms: int = 1000,
    ) -> None:
        self._bus = bus
        self._cache = cache
        self._on_prices = on_prices
        self._block_ms = block_ms
        self._on_book: BookHandler | None = None
        self._book_seq: dict[tuple[str, str], int] = {}
        self._tasks = {
            stream: BackgroundTask(f"follow:{stream}")
            for stream in (MARKET_PRICES, MARKET_BOOKS, MARKET_SNAPSHOT)
        }
        self.lag_s = 0.0
        self.applied = 0
        self.messages = 0
        self.snapshots = 0
        self.unreadable = 0

    @property
    def running(self) -> bool:
        """Following, and holding the ingest tier's state: a replica is not ready (`/ready`)
        before its first snapshot or update, rather than serve an empty market."""
        following = all(task.running for task in self._tasks.values())
        return following and (self.snapshots > 0 or self.applied > 0)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._cache.symbols())

    def counters(self) -> dict[str, float]:
        return {
            "messages": self.messages,
            "applied": self.applied,
            "snapshots": self.snapshots,
            "unreadable": self.unreadable,
        }

    async def start(self, on_book: BookHandler) -> None:
        """Catch up from the newest snapshot (if the ingest tier has published one), then
        tail the streams from where it was taken; returns once the tails run."""
        self._on_book = on_book
        starts = {MARKET_PRICES: FIRST, MARKET_BOOKS: FIRST, MARKET_SNAPSHOT: FIRST}
        held = await self._bus.tail(MARKET_SNAPSHOT, last_id=FIRST, block_ms=0, count=100)
        if held:
            newest = held[-1]
            self._apply(newest)
            starts[MARKET_SNAPSHOT] = newest.id
            starts[MARKET_PRICES] = str(newest.message.data.get("prices_id", FIRST))
            starts[MARKET_BOOKS] = str(newest.message.data.get("books_id", FIRST))
        for stream, task in self._tasks.items():
            task.start(self._follow(stream, starts[stream]))
        logger.info("market.following", extra={"version": self._cache.version, **starts})

    async def stop(self) -> None:
        for task in self._tasks.values():
            await task.stop()

    def request_snapshot(self, symbol: str, venue: str) -> None:
        """Nothing to ask: the ingest tier sends whole books, and a snapshot of all of them
        every `MARKET_SNAPSHOT_S` (the `BookFeed` contract's resync is that snapshot)."""

    async def _follow(self, stream: str, last_id: str) -> None:
        while True:
            deliveries = await self._bus.tail(stream, last_id=last_id, block_ms=self._block_ms)
            for delivery in deliveries:
                last_id = delivery.id
                try:
                    self._apply(delivery)
                except (KeyError, TypeError, ValueError) as exc:  # a bad message, not a bad loop
                    self.unreadable += 1
                    logger.error(
                        "market.unreadable_message",
                        extra={"stream": stream, "entry_id": delivery.id, "error": str(exc)[:200]},
                    )

    def _apply(self, delivery: Delivery) -> None:
        data = delivery.message.data
        self.messages += 1
        if "rows" in data:
            applied = self._cache.apply_rows(decode_rows(data["rows"]))
            self.applied += applied
            if delivery.stream == MARKET_PRICES:
                self.lag_s = max(0.0, time.time() - delivery.message.ts.timestamp())
            if applied:
                self._on_prices(applied)
        in_order = delivery.stream == MARKET_BOOKS
        for book in data.get("books", ()):
            self._apply_book(decode_book(book), in_order=in_order)
        if delivery.stream == MARKET_SNAPSHOT:
            self.snapshots += 1

    def _apply_book(self, book: BookSnapshot, *, in_order: bool) -> None:
        """Books from `market:books` always apply (the stream is in order, and a restarted
        ingest process numbers its books afresh); a snapshot's copy only if it is newer
        than the book held, since it may have been taken before updates already applied."""
        key = (book.symbol, book.venue)
        held = self._book_seq.get(key)
        if not in_order and held is not None and held >= book.seq:
            return
        self._book_seq[key] = book.seq
        if self._on_book is not None:
            self._on_book(book)
