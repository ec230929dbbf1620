"""The realtime process's order books: one feed's messages applied to a `BookRegistry`.

Owns the registry, the feed's lifecycle, getting a book back in sync after a
sequence gap, and the counters the runtime exports as metrics. A gap is seen
by the `OrderBook` (it refuses the delta and sets `needs_resync`); this service
then asks the feed for a snapshot of that one book, once: the deltas the book
keeps refusing until the snapshot arrives do not ask again. A book fed a delta
before any snapshot (a feed that starts mid-stream) is asked for one the same
way, without counting a gap.

Everything runs on the event loop's thread (the feed calls `apply` from its
task, routers read from async handlers), so the books need no lock.

Not here: the feed itself (`realtime.sources`), HTTP (`api.routers.book`), and
a retry when a requested snapshot never comes (the book then stays out of the
NBBO, and `needs_resync` says so in the API).
"""

from __future__ import annotations

import logging

from models.book import BookOut
from models.errors import NotFoundError
from realtime.book_view import book_view
from realtime.order_book import BookRegistry, BookSnapshot, OrderBook
from realtime.sources.book_base import BookFeed, BookMessage

logger = logging.getLogger(__name__)


class BookService:
    """Applies a feed's messages, resyncs gapped books, and answers the book API.

    Counters (plain ints, read at scrape time): `applied` messages that changed
    a book; `refused` deltas that did not (stale duplicates, the gap itself and
    those after it, deltas before a first snapshot); `gaps` sequence gaps seen;
    `resync_requests` snapshots asked of the feed; `resyncs` books brought back
    in sync by a snapshot after a gap.
    """

    def __init__(self, feed: BookFeed | None, registry: BookRegistry | None = None) -> None:
        """`feed=None` (BOOK_FEED=none) gives an empty service whose books are all unknown."""
        self.feed = feed
        self.registry = registry if registry is not None else BookRegistry()
        self.applied = 0
        self.refused = 0
        self.gaps = 0
        self.resync_requests = 0
        self.resyncs = 0
        self._awaiting: set[tuple[str, str]] = set()
        self._changed: set[tuple[str, str]] = set()  # (symbol, venue) since `take_changed`

    @property
    def running(self) -> bool:
        return self.feed is not None and self.feed.running

    async def start(self) -> None:
        if self.feed is not None:
            await self.feed.start(self.apply)

    async def stop(self) -> None:
        if self.feed is not None:
            await self.feed.stop()

    def apply(self, message: BookMessage) -> bool:
        """The feed's `on_book`: apply one message; True if it changed a book.

        Raises ValueError for a message with a non-finite price or a negative
        size: that is a feed bug, and the feed's task should end loudly.
        """
        key = (message.symbol, message.venue)
        before = self._book(*key)
        gaps_before = 0 if before is None else before.gap_count
        was_resyncing = before is not None and before.needs_resync
        if self.registry.apply(message):
            self.applied += 1
            self._changed.add(key)
            if isinstance(message, BookSnapshot):
                self._awaiting.discard(key)
                if was_resyncing:
                    self.resyncs += 1
                    logger.info("book.resynced", extra={"symbol": key[0], "venue": key[1]})
            return True
        self.refused += 1
        book = before if before is not None else self._book(*key)
        if book is not None and book.gap_count > gaps_before:
            self.gaps += 1
        if book is not None and (book.needs_resync or not book.has_snapshot):
            self._request_snapshot(*key)
        return False

    def view(self, symbol: str, levels: int = 10) -> BookOut:
        """The API view of `symbol`; NotFoundError if no feed has sent a message for it."""
        book = self.registry.get(symbol)
        if book is None:
            where = "no book feed is configured" if self.feed is None else "not sent by the feed"
            raise NotFoundError(f"{symbol}: no order book ({where})")
        return book_view(book, levels)

    def symbols(self) -> list[str]:
        return self.registry.symbols()

    def take_changed(self) -> set[tuple[str, str]]:
        """The (symbol, venue) books changed since the last call: what the ingest tier sends
        its replicas next (bounded by the number of books, so nobody calling is harmless)."""
        changed, self._changed = self._changed, set()
        return changed

    def venue_book(self, symbol: str, venue: str) -> OrderBook | None:
        return self._book(symbol, venue)

    def counters(self) -> dict[str, float]:
        """The counters by name, for `Metrics.count_from`."""
        return {
            "applied": self.applied,
            "refused": self.refused,
            "gaps": self.gaps,
            "resync_requests": self.resync_requests,
            "resyncs": self.resyncs,
        }

    def _book(self, symbol: str, venue: str) -> OrderBook | None:
        consolidated = self.registry.get(symbol)
        return None if consolidated is None else consolidated.books.get(venue)

    def _request_snapshot(self, symbol: str, venue: str) -> None:
        """Ask once per out-of-sync spell; the refused deltas that follow don't ask again."""
        if self.feed is None or (symbol, venue) in self._awaiting:
            return
        self._awaiting.add((symbol, venue))
        self.resync_requests += 1
        logger.info("book.resync_requested", extra={"symbol": symbol, "venue": venue})
        self.feed.request_snapshot(symbol, venue)
