"""The embedded default's Level-2 feed: plausible venue books around the simulated prices.

Owns, for every symbol the PriceCache has a price for and every configured
venue, a book of `levels` contiguous ticks per side, and the messages that
keep a consumer's copy of it in sync: a `BookSnapshot` when a book is first
seen or a snapshot was requested, then `BookDelta`s (seq +1 each) for the
levels that were deleted, resized or added since the last step.

Shape of a book at each step, in ticks of `tick_size`, with c = floor(price):
bids from c - back_bid downwards, asks from c + 1 + back_ask upwards, where
each venue's `back` is 0, 1 or 2 ticks drawn afresh per step and side. So
every venue's bids sit at or below c and every ask at or above c + 1: no venue
is ever crossed or locked, on its own or against another, and which venue
holds the best bid or offer changes from step to step, so the NBBO means
something. Sizes are log-normal, deeper levels larger; a level that stays
keeps its size unless it is picked to churn.

Order of the deltas within a step: deletes, then resizes, then adds. After
the deletes every remaining level is one of the new target levels, and the
targets are uncrossed, so a consumer applying the deltas one by one never
sees its own book crossed or locked in between.

All randomness comes from one seeded numpy Generator, drawn in whole-step
arrays (same draws whatever the books look like), so a seed and the same
sequence of cache prices give the same messages.

Not here: the prices themselves (the GBM simulator and the cache), trades,
order-level (L3) data, and applying messages (`BookService`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from models.enums import Side
from realtime.background import BackgroundTask
from realtime.order_book import BookDelta, BookSnapshot, Level
from realtime.price_cache import PriceCache
from realtime.sources.book_base import BookHandler, BookMessage

logger = logging.getLogger(__name__)

DEFAULT_VENUES = ("SIMA", "SIMB")
CHURN_PROB = 0.15
"""Chance per step that a level which stays in the book gets a new size."""
BACK_OFF_PROBS = (0.6, 0.3, 0.1)
"""Chance that a venue's best level sits 0, 1 or 2 ticks behind the inside this step."""
_BASE_SIZE = 200.0  # shares at the touch; each level deeper adds a quarter of it
_SIZE_SIGMA = 0.6


@dataclass(slots=True)
class _SimBook:
    """The feed's own truth for one symbol on one venue: tick -> size per side."""

    bids: dict[int, float] = field(default_factory=dict)
    asks: dict[int, float] = field(default_factory=dict)
    seq: int = 0


class SimulatedBookFeed:
    """Simulated L2 books for every priced symbol on each venue; a `BookFeed`.

    Call every method from the event loop's thread: `step` and
    `request_snapshot` share the pending-snapshot set without a lock. If
    `on_book` raises (the contract says it must not), the task ends and
    `stop()` re-raises it.
    """

    name = "sim-book"

    def __init__(
        self,
        cache: PriceCache,
        *,
        venues: Sequence[str] = DEFAULT_VENUES,
        levels: int = 10,
        tick_size: float = 0.01,
        interval_s: float = 0.25,
        seed: int | None = None,
    ) -> None:
        venues = tuple(v.strip().upper() for v in venues)
        if not venues or len(set(venues)) != len(venues) or not all(venues):
            raise ValueError(f"need one or more distinct, non-empty venues, got {venues}")
        if levels < 1 or not tick_size > 0 or not interval_s > 0:
            raise ValueError(
                f"need levels >= 1, tick_size > 0, interval_s > 0, "
                f"got {levels}, {tick_size}, {interval_s}"
            )
        self._cache = cache
        self._venues = venues
        self._levels = levels
        self._tick = tick_size
        self._decimals = max(0, -int(Decimal(str(tick_size)).normalize().as_tuple().exponent))
        self._interval_s = interval_s
        self._rng = np.random.default_rng(seed)
        self._books: dict[tuple[str, str], _SimBook] = {}
        self._pending: set[tuple[str, str]] = set()
        self._task = BackgroundTask("sim-book-feed")
        self.messages_sent = 0
        self.snapshots_sent = 0
        self.snapshot_requests = 0
        """Calls of `request_snapshot`, counted even when one is already pending."""

    @property
    def venues(self) -> tuple[str, ...]:
        return self._venues

    @property
    def levels(self) -> int:
        """Levels per side each venue book keeps (fewer bids when the price nears zero)."""
        return self._levels

    @property
    def tick_size(self) -> float:
        return self._tick

    @property
    def interval_s(self) -> float:
        """Wall seconds between steps of the background task."""
        return self._interval_s

    @property
    def running(self) -> bool:
        return self._task.running

    def request_snapshot(self, symbol: str, venue: str) -> None:
        """Send a fresh snapshot of this book in the next step, instead of its deltas."""
        if venue not in self._venues:
            raise ValueError(f"{symbol}@{venue}: not a venue of this feed {self._venues}")
        self.snapshot_requests += 1
        self._pending.add((symbol, venue))

    def step(self) -> list[BookMessage]:
        """Move every book to the cache's current prices; return the messages, stamped now."""
        _, prices = self._cache.snapshot()
        keys = [(p.symbol, v, p.price) for p in prices for v in self._venues]
        if not keys:
            return []
        n, depth = len(keys), self._levels
        # Whole-step draws: the same variates are used whatever each book needs.
        backs = self._rng.choice(len(BACK_OFF_PROBS), size=(n, 2), p=BACK_OFF_PROBS).tolist()
        churn = (self._rng.random((n, 2, depth)) < CHURN_PROB).tolist()
        scale = _BASE_SIZE * (1.0 + 0.25 * np.arange(depth))
        draws = scale * self._rng.lognormal(0.0, _SIZE_SIGMA, (n, 2, depth))
        sizes = np.maximum(1.0, np.round(draws)).tolist()
        due, self._pending = self._pending, set()
        now = datetime.now(UTC)
        out: list[BookMessage] = []
        for i, (symbol, venue, price) in enumerate(keys):
            inside = math.floor(price / self._tick + 1e-9)  # 100.00 / 0.01 is 9999.999...
            bid_top, ask_top = inside - backs[i][0], inside + 1 + backs[i][1]
            target_bids = [k for k in range(bid_top, bid_top - depth, -1) if k >= 1]
            target_asks = list(range(ask_top, ask_top + depth))
            book = self._books.get((symbol, venue))
            if book is None or (symbol, venue) in due:  # first sight, or asked to resync
                book = self._books[(symbol, venue)] = _SimBook(
                    bids=dict(zip(target_bids, sizes[i][0], strict=False)),
                    asks=dict(zip(target_asks, sizes[i][1], strict=False)),
                    seq=1 if book is None else book.seq + 1,
                )
                out.append(self._snapshot(symbol, venue, book, now))
                continue
            changes = _diff(book.bids, target_bids, churn[i][0], sizes[i][0], Side.BUY)
            changes += _diff(book.asks, target_asks, churn[i][1], sizes[i][1], Side.SELL)
            changes.sort(key=_delta_order)
            for _, side, tick, size in changes:
                book.seq += 1
                out.append(BookDelta(symbol, venue, book.seq, side, self._price(tick), size, now))
        self.messages_sent += len(out)
        return out

    async def start(self, on_book: BookHandler) -> None:
        self._task.start(self._run(on_book))
        logger.info("sim_book.started", extra={"venues": self._venues, "levels": self._levels})

    async def stop(self) -> None:
        await self._task.stop()
        logger.info("sim_book.stopped")

    def _snapshot(self, symbol: str, venue: str, book: _SimBook, ts: datetime) -> BookSnapshot:
        self.snapshots_sent += 1
        bids = [Level(self._price(k), book.bids[k]) for k in sorted(book.bids, reverse=True)]
        asks = [Level(self._price(k), book.asks[k]) for k in sorted(book.asks)]
        return BookSnapshot(symbol, venue, book.seq, bids, asks, ts)

    def _price(self, tick: int) -> float:
        """The same tick always gives the same float, so a delete finds the level it names."""
        return round(tick * self._tick, self._decimals)

    async def _run(self, on_book: BookHandler) -> None:
        """Step on a fixed schedule of loop time; after a stall, restart the schedule from now."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            for message in self.step():
                on_book(message)
            due += self._interval_s
            wait = due - loop.time()
            if wait < -self._interval_s:
                due, wait = loop.time(), 0.0
            await asyncio.sleep(max(wait, 0.0))


_Change = tuple[int, Side, int, float]  # (phase: 0 delete, 1 resize, 2 add), side, tick, size


def _diff(
    levels: dict[int, float],
    target: list[int],
    churn: list[bool],
    sizes: list[float],
    side: Side,
) -> list[_Change]:
    """Update `levels` in place to the `target` ticks; return the changes as deltas to send.

    `target`, `churn` and `sizes` are by depth (0 = best), so a level's new size
    depends on where it now sits in the book.
    """
    wanted = set(target)
    gone = [k for k in levels if k not in wanted]
    changes: list[_Change] = [(0, side, k, 0.0) for k in gone]
    for tick in gone:
        del levels[tick]
    for d, tick in enumerate(target):
        old = levels.get(tick)
        if old is None:
            levels[tick] = sizes[d]
            changes.append((2, side, tick, sizes[d]))
        elif churn[d] and sizes[d] != old:
            levels[tick] = sizes[d]
            changes.append((1, side, tick, sizes[d]))
    return changes


def _delta_order(change: _Change) -> int:
    """Deletes first on both sides, then resizes, then adds: never crossed in between."""
    return change[0]
