"""Level-2 order books built from venue snapshots and sequenced deltas, and the NBBO across them.

Owns: the price levels of one symbol on one venue (`OrderBook`), the best bid
and offer across venues (`ConsolidatedBook`), and the symbol -> book map
(`BookRegistry`). Pure: no I/O, no clock, no threads; timestamps are carried,
never read. Prices are floats on purpose (docs/decisions/0004).

Sequencing: deltas must be contiguous. A delta at or below the book's `seq` is
a stale duplicate and is ignored; one past `seq + 1` is a gap, after which the
book is out of sync and refuses deltas until the next snapshot. A book that
has never had a snapshot refuses deltas too (not counted as a gap).

Crossed (bid > ask) and locked (bid == ask) books are flagged, never "fixed":
the level is applied, `crossed`/`locked` say so, `valid` turns False and a
counter moves on each transition into the state. Removing the offending level
clears the flag.

Not here: fetching or parsing venue feeds, requesting a resync, order-level
(L3) books, Decimal conversion for anything that becomes money, and locking
(one book is fed by one consumer).
"""

from __future__ import annotations

import logging
import math
from bisect import bisect_left, insort
from dataclasses import dataclass
from datetime import datetime

from models.enums import Side

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Level:
    """The total size resting at `price`. The book keeps and returns only sizes > 0."""

    price: float
    size: float


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The whole book at `seq`; replaces everything. Any order; size-0 levels are skipped."""

    symbol: str
    venue: str
    seq: int
    bids: list[Level]
    asks: list[Level]
    ts: datetime


@dataclass(frozen=True, slots=True)
class BookDelta:
    """Set the size at `price` on `side` (BUY = bids, SELL = asks). Size 0 deletes the level."""

    symbol: str
    venue: str
    seq: int
    side: Side
    price: float
    size: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class NBBO:
    """Best bid and offer across venues, with the venue each came from."""

    bid: Level | None
    bid_venue: str | None
    ask: Level | None
    ask_venue: str | None

    @property
    def crossed(self) -> bool:
        """Bid above ask across venues: normal for an instant in fragmented markets, so flagged."""
        return self.bid is not None and self.ask is not None and self.bid.price > self.ask.price

    @property
    def locked(self) -> bool:
        return self.bid is not None and self.ask is not None and self.bid.price == self.ask.price


class _BookSide:
    """Levels of one side: a dict price -> size plus a sorted list of keys, best key last.

    Keys are the price for bids and the negated price for asks, so on both
    sides the best level is `keys[-1]` (O(1)) and the busy part of the book,
    near the touch, sits at the end of the list where `insort`/`del` shift
    few elements. An update at an existing price is O(1); an add or delete is
    O(log n) search plus an O(n) memmove, which for the tens to hundreds of
    levels a venue publishes beats a tree or heap in CPython (no extra
    dependency, and depth is already in order).
    """

    __slots__ = ("_keys", "_sign", "sizes")

    def __init__(self, side: Side) -> None:
        self._sign = 1.0 if side is Side.BUY else -1.0
        self._keys: list[float] = []
        self.sizes: dict[float, float] = {}

    def __len__(self) -> int:
        return len(self._keys)

    def set(self, price: float, size: float) -> bool:
        """Apply one level; return False for deleting a price that is not there."""
        if size == 0:
            if self.sizes.pop(price, None) is None:
                return False
            key = self._sign * price
            del self._keys[bisect_left(self._keys, key)]
            return True
        if price not in self.sizes:
            insort(self._keys, self._sign * price)
        self.sizes[price] = size
        return True

    def clear(self) -> None:
        self._keys.clear()
        self.sizes.clear()

    def best(self) -> Level | None:
        if not self._keys:
            return None
        price = self._sign * self._keys[-1]
        return Level(price, self.sizes[price])

    def best_price(self) -> float | None:
        """The best price without building a `Level` (the per-message checks need only this)."""
        return self._sign * self._keys[-1] if self._keys else None

    def top(self, levels: int) -> list[Level]:
        """The best `levels` levels, best first."""
        keys = self._keys[-levels:] if levels > 0 else []
        return [Level(self._sign * k, self.sizes[self._sign * k]) for k in reversed(keys)]


class OrderBook:
    """The L2 book of one symbol on one venue, kept in sync by sequence number.

    Deleting a price that is not in the book is harmless: ignored, and counted
    in `missing_deletes` (venues do this after their own resyncs; a rising
    count points at a feed problem worth a look).
    """

    def __init__(self, symbol: str, venue: str) -> None:
        self.symbol = symbol
        self.venue = venue
        self.seq = 0
        self.ts: datetime | None = None
        self.has_snapshot = False
        self.needs_resync = False
        self.gap_count = 0
        self.crossed_count = 0
        self.locked_count = 0
        self.missing_deletes = 0
        self._crossed = self._locked = False
        self._bids = _BookSide(Side.BUY)
        self._asks = _BookSide(Side.SELL)

    def apply_snapshot(self, snapshot: BookSnapshot) -> None:
        """Replace every level and the sequence number; clears `needs_resync`."""
        self._check_route(snapshot.symbol, snapshot.venue)
        self._bids.clear()
        self._asks.clear()
        for book_side, levels in ((self._bids, snapshot.bids), (self._asks, snapshot.asks)):
            for level in levels:
                _check_level(level.price, level.size, snapshot)
                if level.size > 0:
                    book_side.set(level.price, level.size)
        self.seq, self.ts = snapshot.seq, snapshot.ts
        self.has_snapshot, self.needs_resync = True, False
        self._update_flags()

    def apply_delta(self, delta: BookDelta) -> bool:
        """Apply the next delta in sequence; return False if it was stale, a gap or refused."""
        self._check_route(delta.symbol, delta.venue)
        _check_level(delta.price, delta.size, delta)
        if not self.has_snapshot or self.needs_resync or delta.seq <= self.seq:
            return False
        if delta.seq > self.seq + 1:
            self.needs_resync = True
            self.gap_count += 1
            where = {"symbol": self.symbol, "venue": self.venue, "seq": self.seq}
            logger.warning("book.gap", extra={**where, "got": delta.seq})
            return False
        book_side = self._bids if delta.side is Side.BUY else self._asks
        if not book_side.set(delta.price, delta.size):
            self.missing_deletes += 1
        self.seq, self.ts = delta.seq, delta.ts
        self._update_flags()
        return True

    @property
    def best_bid(self) -> Level | None:
        return self._bids.best()

    @property
    def best_ask(self) -> Level | None:
        return self._asks.best()

    @property
    def spread(self) -> float | None:
        """Ask minus bid; negative when crossed. None unless both sides have a level."""
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else ask.price - bid.price

    @property
    def mid(self) -> float | None:
        bid, ask = self.best_bid, self.best_ask
        return None if bid is None or ask is None else (bid.price + ask.price) / 2

    @property
    def microprice(self) -> float | None:
        """Mid weighted towards the thinner side: (bid*ask_sz + ask*bid_sz) / (bid_sz + ask_sz)."""
        bid, ask = self.best_bid, self.best_ask
        if bid is None or ask is None:
            return None
        return (bid.price * ask.size + ask.price * bid.size) / (bid.size + ask.size)

    def imbalance(self, levels: int = 5) -> float:
        """(bid size - ask size) / total over the top `levels` per side, in [-1, 1]; 0 if empty."""
        bids, asks = self.depth(levels)
        bid_size, ask_size = sum(lv.size for lv in bids), sum(lv.size for lv in asks)
        total = bid_size + ask_size
        return 0.0 if total == 0 else (bid_size - ask_size) / total

    def depth(self, levels: int = 10) -> tuple[list[Level], list[Level]]:
        """Top `levels` per side: bids descending, asks ascending (best first on both)."""
        return self._bids.top(levels), self._asks.top(levels)

    @property
    def crossed(self) -> bool:
        """Best bid above best ask. Kept as state, updated once per applied message."""
        return self._crossed

    @property
    def locked(self) -> bool:
        """Best bid equal to best ask."""
        return self._locked

    @property
    def valid(self) -> bool:
        """Safe to quote from: synced, not crossed or locked, at least one level.

        A one-sided book is valid: a thin venue can show only bids.
        """
        return (
            self.has_snapshot
            and not self.needs_resync
            and (len(self._bids) > 0 or len(self._asks) > 0)
            and not self.crossed
            and not self.locked
        )

    def touch(self) -> tuple[bool, float | None, float | None]:
        """(synced, best bid price, best ask price): everything `valid` and the NBBO's
        crossing depend on (crossed, locked and empty follow from the two prices)."""
        return (
            self.has_snapshot and not self.needs_resync,
            self._bids.best_price(),
            self._asks.best_price(),
        )

    def _check_route(self, symbol: str, venue: str) -> None:
        if (symbol, venue) != (self.symbol, self.venue):
            raise ValueError(f"{symbol}@{venue}: routed to the book of {self.symbol}@{self.venue}")

    def _update_flags(self) -> None:
        """Recompute crossed/locked; count and log each transition into either state."""
        was_crossed, was_locked = self._crossed, self._locked
        bid, ask = self._bids.best_price(), self._asks.best_price()
        crossed = self._crossed = bid is not None and ask is not None and bid > ask
        locked = self._locked = bid is not None and ask is not None and bid == ask
        self.crossed_count += crossed and not was_crossed
        self.locked_count += locked and not was_locked
        if (crossed or locked) and not (was_crossed or was_locked):
            logger.info(
                "book.crossed" if crossed else "book.locked",
                extra={"symbol": self.symbol, "venue": self.venue, "seq": self.seq},
            )


class ConsolidatedBook:
    """One symbol across venues: a book per venue (made on first sight) and their NBBO.

    Only valid venue books count towards the NBBO, so a venue needing a resync
    or showing a crossed/locked book of its own drops out until it recovers.
    `nbbo_crossed_count` counts transitions of the NBBO into a cross.
    """

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.books: dict[str, OrderBook] = {}
        self.nbbo_crossed_count = 0
        self._nbbo_crossed = False

    def apply(self, message: BookSnapshot | BookDelta) -> bool:
        """Route to the venue's book; True if it changed the book (snapshots always do)."""
        if message.symbol != self.symbol:
            raise ValueError(f"{message.symbol}: routed to the consolidated book of {self.symbol}")
        book = self.books.get(message.venue)
        if book is None:
            book = self.books[message.venue] = OrderBook(self.symbol, message.venue)
        before = book.touch()
        if isinstance(message, BookSnapshot):
            book.apply_snapshot(message)
            applied = True
        else:
            applied = book.apply_delta(message)
        # Most deltas change depth, not the touch: only a new touch can move the NBBO.
        if applied and book.touch() != before:
            crossed, self._nbbo_crossed = self._nbbo_crossed, self.nbbo().crossed
            self.nbbo_crossed_count += self._nbbo_crossed and not crossed
        return applied

    def nbbo(self) -> NBBO:
        """Best bid and ask over valid venues; ties go to the larger size, then the venue name."""
        valid = [(v, b) for v, b in self.books.items() if b.valid]
        bids = [(lv, v) for v, b in valid if (lv := b.best_bid) is not None]
        asks = [(lv, v) for v, b in valid if (lv := b.best_ask) is not None]
        bid = min(bids, key=lambda c: (-c[0].price, -c[0].size, c[1]), default=None)
        ask = min(asks, key=lambda c: (c[0].price, -c[0].size, c[1]), default=None)
        (bid_level, bid_venue), (ask_level, ask_venue) = bid or (None, None), ask or (None, None)
        return NBBO(bid_level, bid_venue, ask_level, ask_venue)

    @property
    def crossed(self) -> bool:
        return self.nbbo().crossed


class BookRegistry:
    """Consolidated books by symbol, made on first sight. Built by the caller, not a singleton."""

    def __init__(self) -> None:
        self._books: dict[str, ConsolidatedBook] = {}

    def apply(self, message: BookSnapshot | BookDelta) -> bool:
        book = self._books.get(message.symbol)
        if book is None:
            book = self._books[message.symbol] = ConsolidatedBook(message.symbol)
        return book.apply(message)

    def get(self, symbol: str) -> ConsolidatedBook | None:
        return self._books.get(symbol)

    def symbols(self) -> list[str]:
        return sorted(self._books)


def _check_level(price: float, size: float, source: BookSnapshot | BookDelta) -> None:
    """A negative size or a non-finite number is a feed bug: fail loudly, don't guess.

    Prices may be zero or negative (spreads, some futures); the book doesn't care.
    """
    if not (math.isfinite(price) and math.isfinite(size)) or size < 0:
        raise ValueError(
            f"{source.symbol}@{source.venue} seq {source.seq}: bad level {price} x {size}"
        )
