"""The simulated L2 feed and the BookService: books that stay sane, follow prices, and resync."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

import numpy as np
import pytest

from models.errors import ConfigurationError
from models.market_data import Tick
from realtime.book_service import BookService
from realtime.order_book import BookDelta, BookRegistry, BookSnapshot, OrderBook
from realtime.price_cache import PriceCache
from realtime.sources.book_base import BookFeed, BookMessage
from realtime.sources.factory import make_book_feed
from realtime.sources.gbm_params import GBMParams
from realtime.sources.sim_book import SimulatedBookFeed
from realtime.sources.simulator import GBMSimulator
from services.settings import Settings, load_settings

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
_clock: Iterator[int] = count()


def set_price(cache: PriceCache, symbol: str, price: float) -> None:
    """A tick later than every earlier one, so the cache always takes it."""
    cache.update(Tick(symbol, price, 100.0, T0 + timedelta(seconds=next(_clock))))


def make_feed(
    prices: dict[str, float], *, levels: int = 10, interval_s: float = 0.25, seed: int = 7
) -> tuple[PriceCache, SimulatedBookFeed]:
    cache = PriceCache()
    for symbol, price in prices.items():
        set_price(cache, symbol, price)
    return cache, SimulatedBookFeed(cache, levels=levels, interval_s=interval_s, seed=seed)


def venue_book(registry: BookRegistry, symbol: str, venue: str) -> OrderBook:
    consolidated = registry.get(symbol)
    assert consolidated is not None
    return consolidated.books[venue]


def key(message: BookMessage) -> tuple[str, str]:
    return message.symbol, message.venue


def test_venue_books_never_cross_or_lock_while_following_a_wild_simulated_market() -> None:
    symbols = ("AAA", "BBB", "CCC")
    params = GBMParams(
        symbols, np.array([100.0, 5.0, 1500.0]), np.zeros(3), np.full(3, 1.5), np.eye(3)
    )
    sim = GBMSimulator(params, time_scale=2000.0, jump_prob=0.05, jump_sigma=0.05, seed=11)
    cache = PriceCache()
    feed = SimulatedBookFeed(cache, levels=8, seed=11)
    registry = BookRegistry()
    last_seq: dict[tuple[str, str], int] = {}
    deltas = 0
    for _ in range(400):
        for tick in sim.step():
            cache.update(tick)
        for message in feed.step():
            expected = last_seq.get(key(message), 0) + 1
            assert message.seq == expected, f"{key(message)}: seq {message.seq}, not {expected}"
            last_seq[key(message)] = message.seq
            assert isinstance(message, BookSnapshot) == (expected == 1)
            deltas += isinstance(message, BookDelta)
            assert registry.apply(message)
            book = venue_book(registry, *key(message))
            assert not book.crossed
            assert not book.locked
        for symbol in symbols:
            consolidated = registry.get(symbol)
            assert consolidated is not None
            assert all(book.valid for book in consolidated.books.values())
            nbbo = consolidated.nbbo()
            assert not nbbo.crossed
            assert not nbbo.locked
    assert set(last_seq) == {(s, v) for s in symbols for v in ("SIMA", "SIMB")}
    assert deltas > 400 * 6  # the books moved: this was not a test of a still market


def test_books_follow_the_price_when_the_cache_moves() -> None:
    cache, feed = make_feed({"AAPL": 100.0}, levels=5)
    registry = BookRegistry()
    for price in (100.0, 123.45, 99.2, 0.5):
        set_price(cache, "AAPL", price)
        for message in feed.step():
            registry.apply(message)
        consolidated = registry.get("AAPL")
        assert consolidated is not None
        nbbo = consolidated.nbbo()
        assert nbbo.bid is not None
        assert nbbo.ask is not None
        # Inside within a tick of the price; venues back off at most two ticks.
        assert price - 0.03 - 1e-9 <= nbbo.bid.price <= price + 1e-9
        assert price < nbbo.ask.price <= price + 0.04 + 1e-9
        for book in consolidated.books.values():
            bids, asks = book.depth(10)
            assert len(bids) == len(asks) == 5
            ticks = [round(lv.price / 0.01) for lv in bids[::-1] + asks]
            assert ticks[:5] == list(range(ticks[0], ticks[0] + 5))  # contiguous bids
            assert ticks[5:] == list(range(ticks[5], ticks[5] + 5))  # contiguous asks
            assert all(lv.size >= 1 for lv in bids + asks)


def test_venues_quote_differently_so_the_nbbo_combines_them() -> None:
    _, feed = make_feed({"MSFT": 410.5})
    registry = BookRegistry()
    bid_venues: set[str | None] = set()
    ask_venues: set[str | None] = set()
    for _ in range(50):
        for message in feed.step():
            registry.apply(message)
        consolidated = registry.get("MSFT")
        assert consolidated is not None
        nbbo = consolidated.nbbo()
        bid_venues.add(nbbo.bid_venue)
        ask_venues.add(nbbo.ask_venue)
    assert bid_venues == ask_venues == {"SIMA", "SIMB"}


def test_the_same_seed_and_prices_give_the_same_messages() -> None:
    def run(seed: int) -> list[tuple[object, ...]]:
        cache, feed = make_feed({"AAPL": 187.23, "XOM": 61.07}, seed=seed)
        out: list[tuple[object, ...]] = []
        for price in (187.23, 187.31, 186.9):
            set_price(cache, "AAPL", price)
            for m in feed.step():
                body = (
                    (m.bids, m.asks) if isinstance(m, BookSnapshot) else (m.side, m.price, m.size)
                )
                out.append((type(m).__name__, m.symbol, m.venue, m.seq, body))
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_a_dropped_delta_is_one_gap_that_one_snapshot_request_repairs_on_the_next_step() -> None:
    cache, feed = make_feed({"AAPL": 100.0, "MSFT": 200.0})
    service = BookService(feed)
    mirror = BookRegistry()  # sees every message: the feed's truth as a consumer knows it
    for message in feed.step():
        service.apply(message)
        mirror.apply(message)

    set_price(cache, "AAPL", 100.5)  # 50 ticks: every AAPL level moves, many deltas per book
    messages = feed.step()
    dropped = [m for m in messages if key(m) == ("AAPL", "SIMA")][2]
    for message in messages:
        mirror.apply(message)
        if message is not dropped:
            service.apply(message)

    gapped = venue_book(service.registry, "AAPL", "SIMA")
    assert gapped.needs_resync
    assert not gapped.valid
    assert (service.gaps, service.resync_requests, feed.snapshot_requests) == (1, 1, 1)
    assert service.refused > 1  # every later delta of that book was refused, asking nothing more
    view = service.view("AAPL")
    assert (view.nbbo.bid_venue, view.nbbo.ask_venue) == ("SIMB", "SIMB")
    assert venue_book(service.registry, "MSFT", "SIMA").valid

    following = feed.step()
    snapshots = [m for m in following if isinstance(m, BookSnapshot)]
    assert [key(m) for m in snapshots] == [("AAPL", "SIMA")]
    for message in following:
        service.apply(message)
        mirror.apply(message)

    assert gapped.valid
    assert (service.gaps, service.resync_requests, service.resyncs) == (1, 1, 1)
    for symbol in ("AAPL", "MSFT"):
        for venue in ("SIMA", "SIMB"):
            ours = venue_book(service.registry, symbol, venue)
            truth = venue_book(mirror, symbol, venue)
            assert (ours.seq, ours.depth(50)) == (truth.seq, truth.depth(50))


def test_a_delta_before_any_snapshot_asks_for_one_without_counting_a_gap() -> None:
    _, feed = make_feed({"AAPL": 100.0})
    feed.step()  # the feed's first snapshots are lost: this consumer joined late
    service = BookService(feed)
    first = [m for m in feed.step() if key(m) == ("AAPL", "SIMA")]
    for message in first:
        service.apply(message)
    assert first
    assert (service.refused, service.gaps, service.resync_requests) == (len(first), 0, 1)
    for message in feed.step():
        service.apply(message)
    assert venue_book(service.registry, "AAPL", "SIMA").valid


def test_asking_a_snapshot_of_a_venue_the_feed_does_not_quote_is_refused() -> None:
    _, feed = make_feed({"AAPL": 100.0})
    with pytest.raises(ValueError, match="XNAS"):
        feed.request_snapshot("AAPL", "XNAS")


def test_the_service_runs_the_feed_until_stop_and_leaves_no_task_behind() -> None:
    async def scenario() -> tuple[BookService, int, int, list[str]]:
        _, feed = make_feed({"AAPL": 100.0}, interval_s=0.01)
        service = BookService(feed)
        await service.start()
        running = service.running
        for _ in range(500):  # a bound, not a timing assertion
            if service.applied >= 10:
                break
            await asyncio.sleep(0.01)
        await service.stop()
        at_stop = service.applied
        await asyncio.sleep(0.05)
        assert running
        return service, at_stop, service.applied, [t.get_name() for t in asyncio.all_tasks()]

    service, at_stop, after, tasks = asyncio.run(scenario())
    assert not service.running
    assert at_stop >= 10
    assert after == at_stop
    assert "sim-book-feed" not in tasks
    assert service.view("AAPL").valid


def test_the_factory_builds_the_feed_the_settings_ask_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    cache = PriceCache()
    assert make_book_feed(Settings(book_feed="none"), cache) is None
    feed = make_book_feed(
        Settings(book_venues=[" xnas", "ARCX"], book_levels=3, book_interval_ms=100), cache
    )
    assert isinstance(feed, SimulatedBookFeed)
    assert (feed.venues, feed.levels, feed.interval_s) == (("XNAS", "ARCX"), 3, 0.1)
    sim: BookFeed = feed  # it keeps the contract a venue feed will keep
    assert not sim.running


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("BOOK_VENUES", '["SIMA", "sima"]'),
        ("BOOK_VENUES", "[]"),
        ("BOOK_LEVELS", "0"),
        ("BOOK_FEED", "alpaca"),
    ],
)
def test_bad_book_settings_fail_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var: str, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=var):
        load_settings()
