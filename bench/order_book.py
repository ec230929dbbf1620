"""Benchmark: order-book updates/s of `BookRegistry.apply`, against naive dict books.

The stream is what the realtime process applies: `SimulatedBookFeed` quoting
`--symbols` symbols on two venues, `--levels` per side, while every price
takes a random walk of about 1.5 ticks a step. It is generated up front
(seeded, not timed) and cut at `--messages`: one snapshot per book, then
deltas (deletes, resizes and adds as prices move).

Each message is timed through the same per-message work, in the same run:

* ours: `BookRegistry.apply` (sequence checks, the level, crossed/locked
  flags, the NBBO across valid venues);
* baseline "sorted": a plain dict price -> size per side, the same sequence
  checks, and every best-price query answered by `sorted()` over the side's
  prices (the flags and the NBBO ask for the best bid and ask of each venue);
* baseline "max": the same dict book, best prices by `max()`/`min()` over
  the dict, the one-line fix most people would reach for first.

Ratios are ours / baseline updates/s: above 1 means ours is faster.

Usage: python bench/order_book.py [--messages 1000000] [--seed 1] [--symbols 500]
                                  [--levels 10] [--repeat 1]
Another bench script in this folder can `from order_book import measure_book_updates`.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import numpy as np

from models.market_data import Tick
from realtime.order_book import BookDelta, BookRegistry, BookSnapshot
from realtime.price_cache import PriceCache
from realtime.sources.book_base import BookMessage
from realtime.sources.sim_book import SimulatedBookFeed

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
TICK = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--levels", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings per book")
    args = parser.parse_args()
    result = measure_book_updates(
        args.messages, args.seed, symbols=args.symbols, levels=args.levels, repeat=args.repeat
    )
    print(
        f"stream: {result['messages']:,.0f} messages ({result['delta_share']:.1%} deltas), "
        f"{args.symbols} symbols x 2 venues, {args.levels} levels, "
        f"generated in {result['generate_s']:.1f} s"
    )
    print()
    print("| book | seconds | updates/s | ours vs this |")
    print("|---|---:|---:|---:|")
    rows = (
        ("ours: BookRegistry.apply", ""),
        ("baseline: sorted()", "sorted"),
        ("baseline: max()/min()", "max"),
    )
    for label, name in rows:
        prefix = f"baseline_{name}_" if name else ""
        ratio = f"{result[f'ratio_vs_{name}']:.2f}x" if name else "1x"
        print(
            f"| {label} | {result[prefix + 'seconds']:.2f} | "
            f"{result[prefix + 'updates_per_s']:,.0f} | {ratio} |"
        )


def measure_book_updates(
    n_messages: int,
    seed: int,
    *,
    symbols: int = 500,
    levels: int = 10,
    repeat: int = 1,
) -> dict[str, float]:
    """Updates/s of `BookRegistry.apply` and of both baselines over one seeded stream.

    Keys: messages, delta_share, generate_s; seconds and updates_per_s (ours);
    baseline_sorted_* and baseline_max_* likewise; ratio_vs_sorted and
    ratio_vs_max (ours / baseline updates/s). Best of `repeat` timings each.
    """
    started = time.perf_counter()
    stream = make_stream(n_messages, seed, symbols=symbols, levels=levels)
    generate_s = time.perf_counter() - started
    out: dict[str, float] = {
        "messages": float(len(stream)),
        "delta_share": sum(isinstance(m, BookDelta) for m in stream) / len(stream),
        "generate_s": generate_s,
    }
    books: dict[str, Callable[[], Callable[[BookMessage], object]]] = {
        "": lambda: BookRegistry().apply,
        "baseline_sorted_": lambda: _NaiveRegistry(_best_by_sorted).apply,
        "baseline_max_": lambda: _NaiveRegistry(_best_by_max).apply,
    }
    for prefix, make in books.items():
        seconds = min(_time_apply(make(), stream) for _ in range(max(1, repeat)))
        out[prefix + "seconds"] = seconds
        out[prefix + "updates_per_s"] = len(stream) / seconds
    for name in ("sorted", "max"):
        out[f"ratio_vs_{name}"] = out["updates_per_s"] / out[f"baseline_{name}_updates_per_s"]
    return out


def make_stream(
    n_messages: int, seed: int, *, symbols: int = 500, levels: int = 10
) -> list[BookMessage]:
    """The first `n_messages` the simulated feed sends while prices random-walk."""
    rng = np.random.default_rng(seed)
    names = [f"S{i:04d}" for i in range(symbols)]
    prices = np.round(np.exp(rng.uniform(np.log(5.0), np.log(1000.0), symbols)), 2)
    cache = PriceCache()
    feed = SimulatedBookFeed(cache, levels=levels, tick_size=TICK, seed=seed)
    stream: list[BookMessage] = []
    step = 0
    while len(stream) < n_messages:
        ts = T0 + timedelta(seconds=step)
        for name, price in zip(names, prices.tolist(), strict=True):
            cache.update(Tick(name, price, 100.0, ts))
        stream.extend(feed.step())
        moves = np.round(rng.normal(0.0, 1.5, symbols)) * TICK
        prices = np.maximum(1.0, np.round(prices + moves, 2))
        step += 1
    return stream[:n_messages]


def _time_apply(apply: Callable[[BookMessage], object], stream: Iterable[BookMessage]) -> float:
    """Seconds to apply every message; the collector stays out of the timed loop."""
    gc.collect()
    gc.disable()
    try:
        started = time.perf_counter()
        for message in stream:
            apply(message)
        return time.perf_counter() - started
    finally:
        gc.enable()


BestOf = Callable[[dict[float, float], bool], float | None]


def _best_by_sorted(side: dict[float, float], highest: bool) -> float | None:
    if not side:
        return None
    ordered = sorted(side)
    return ordered[-1] if highest else ordered[0]


def _best_by_max(side: dict[float, float], highest: bool) -> float | None:
    if not side:
        return None
    return max(side) if highest else min(side)


class _NaiveBook:
    __slots__ = ("asks", "bids", "crossed", "needs_resync", "seq", "synced")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.seq = 0
        self.synced = False
        self.needs_resync = False
        self.crossed = False


class _NaiveRegistry:
    """`BookRegistry.apply`'s contract on plain dicts, with a pluggable best-price query."""

    def __init__(self, best: BestOf) -> None:
        self._best = best
        self._books: dict[str, dict[str, _NaiveBook]] = {}
        self.nbbo: dict[str, tuple[float | None, float | None]] = {}

    def apply(self, message: BookMessage) -> bool:
        venues = self._books.setdefault(message.symbol, {})
        book = venues.get(message.venue)
        if book is None:
            book = venues[message.venue] = _NaiveBook()
        if isinstance(message, BookSnapshot):
            book.bids = {lv.price: lv.size for lv in message.bids if lv.size > 0}
            book.asks = {lv.price: lv.size for lv in message.asks if lv.size > 0}
            book.seq, book.synced, book.needs_resync = message.seq, True, False
        else:
            if not book.synced or book.needs_resync or message.seq <= book.seq:
                return False
            if message.seq > book.seq + 1:
                book.needs_resync = True
                return False
            side = book.bids if message.side == "buy" else book.asks
            if message.size == 0:
                side.pop(message.price, None)
            else:
                side[message.price] = message.size
            book.seq = message.seq
        best = self._best
        bid, ask = best(book.bids, True), best(book.asks, False)
        book.crossed = bid is not None and ask is not None and bid >= ask
        quoting = [b for b in venues.values() if b.synced and not b.needs_resync and not b.crossed]
        bids = [p for b in quoting if (p := best(b.bids, True)) is not None]
        asks = [p for b in quoting if (p := best(b.asks, False)) is not None]
        self.nbbo[message.symbol] = (max(bids, default=None), min(asks, default=None))
        return True


if __name__ == "__main__":
    main()
