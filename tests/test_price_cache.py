"""PriceCache: what a reader sees, and that concurrent writers and readers stay consistent."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from models.market_data import Tick
from realtime.price_cache import PriceCache

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def tick(symbol: str = "AAPL", price: float = 100.0, at: timedelta = timedelta(0)) -> Tick:
    return Tick(symbol=symbol, price=price, size=1.0, ts=T0 + at)


def test_first_tick_sets_day_open_and_later_ticks_move_change_and_direction() -> None:
    cache = PriceCache()
    cache.update(tick(price=100))
    cache.update(tick(price=102, at=timedelta(seconds=1)))
    snap = cache.get("AAPL")
    assert snap is not None
    assert (snap.price, snap.prev_price, snap.day_open, snap.direction) == (102, 100, 100, 1)
    assert snap.change == 2
    assert snap.change_pct == 2.0
    cache.update(tick(price=101, at=timedelta(seconds=2)))
    assert cache.get("AAPL").direction == -1  # type: ignore[union-attr]


def test_a_new_day_resets_the_day_open() -> None:
    cache = PriceCache()
    cache.update(tick(price=100))
    cache.update(tick(price=110, at=timedelta(days=1)))
    snap = cache.get("AAPL")
    assert snap is not None
    assert (snap.day_open, snap.change) == (110, 0)


def test_out_of_order_ticks_do_not_overwrite_newer_state() -> None:
    cache = PriceCache()
    cache.update(tick(price=100, at=timedelta(seconds=5)))
    version = cache.version
    assert cache.update(tick(price=50, at=timedelta(seconds=1))) == version
    assert cache.get("AAPL").price == 100  # type: ignore[union-attr]


def test_changed_since_returns_only_what_moved_and_honours_the_filter() -> None:
    cache = PriceCache()
    for s in ("AAPL", "MSFT", "KO"):
        cache.update(tick(symbol=s))
    v, _ = cache.snapshot()
    cache.update(tick(symbol="MSFT", price=99, at=timedelta(seconds=1)))
    cache.update(tick(symbol="KO", price=98, at=timedelta(seconds=1)))
    now, changed = cache.changed_since(v)
    assert now == v + 2
    assert [s.symbol for s in changed] == ["KO", "MSFT"]
    _, filtered = cache.changed_since(v, symbols={"MSFT", "AAPL"})
    assert [s.symbol for s in filtered] == ["MSFT"]
    assert cache.changed_since(now) == (now, [])


def test_concurrent_writers_and_readers_lose_no_update_and_see_consistent_versions() -> None:
    cache = PriceCache()
    writers, per_writer = 4, 5_000
    errors: list[str] = []
    stop = threading.Event()

    def write(n: int) -> None:
        for i in range(per_writer):
            cache.update(tick(symbol=f"S{n}", price=100 + i, at=timedelta(microseconds=i)))

    def read() -> None:
        last = 0
        while not stop.is_set():
            version, snaps = cache.snapshot()
            if version < last:
                errors.append(f"version went back {last} -> {version}")
            if any(s.version > version for s in snaps):
                errors.append("entry newer than the snapshot's version")
            last = version

    readers = [threading.Thread(target=read) for _ in range(2)]
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert cache.version == writers * per_writer
    _, snaps = cache.snapshot()
    assert {s.symbol: s.price for s in snaps} == {
        f"S{n}": 100 + per_writer - 1 for n in range(writers)
    }
