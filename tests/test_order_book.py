"""OrderBook, ConsolidatedBook, BookRegistry: what a reader of the book sees after each message."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.enums import Side
from realtime.order_book import (
    NBBO,
    BookDelta,
    BookRegistry,
    BookSnapshot,
    ConsolidatedBook,
    Level,
    OrderBook,
)

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def snapshot(
    bids: Sequence[tuple[float, float]] = ((99.0, 5.0), (98.0, 10.0)),
    asks: Sequence[tuple[float, float]] = ((101.0, 3.0), (102.0, 7.0)),
    seq: int = 10,
    venue: str = "XNAS",
    symbol: str = "AAPL",
) -> BookSnapshot:
    return BookSnapshot(
        symbol=symbol,
        venue=venue,
        seq=seq,
        bids=[Level(p, s) for p, s in bids],
        asks=[Level(p, s) for p, s in asks],
        ts=T0,
    )


def delta(
    seq: int,
    side: Side,
    price: float,
    size: float,
    venue: str = "XNAS",
    symbol: str = "AAPL",
) -> BookDelta:
    return BookDelta(symbol=symbol, venue=venue, seq=seq, side=side, price=price, size=size, ts=T0)


def book_from(snap: BookSnapshot) -> OrderBook:
    book = OrderBook(snap.symbol, snap.venue)
    book.apply_snapshot(snap)
    return book


# --- one venue -----------------------------------------------------------------


def test_snapshot_gives_best_levels_spread_mid_and_microprice() -> None:
    book = book_from(snapshot())
    assert book.best_bid == Level(99.0, 5.0)
    assert book.best_ask == Level(101.0, 3.0)
    assert book.spread == 2.0
    assert book.mid == 100.0
    # (99 * 3 + 101 * 5) / (5 + 3) = (297 + 505) / 8 = 100.25: pulled towards the thin ask
    assert book.microprice == pytest.approx(100.25)
    assert book.valid
    assert book.seq == 10


def test_adds_updates_and_deletes_move_the_best_levels() -> None:
    book = book_from(snapshot())
    assert book.apply_delta(delta(11, Side.BUY, 100.0, 2.0))  # new best bid
    assert book.best_bid == Level(100.0, 2.0)
    assert book.apply_delta(delta(12, Side.BUY, 100.0, 4.0))  # update in place
    assert book.best_bid == Level(100.0, 4.0)
    assert book.apply_delta(delta(13, Side.SELL, 101.0, 0.0))  # delete the best ask
    assert book.best_ask == Level(102.0, 7.0)
    assert book.spread == 2.0
    assert book.mid == 101.0
    assert book.microprice == pytest.approx((100.0 * 7.0 + 102.0 * 4.0) / 11.0)
    assert book.seq == 13


def test_depth_orders_bids_descending_and_asks_ascending_and_truncates() -> None:
    book = book_from(
        snapshot(bids=[(97.0, 1.0), (99.0, 2.0), (98.0, 3.0)], asks=[(103.0, 1.0), (101.0, 2.0)])
    )
    bids, asks = book.depth(levels=2)
    assert bids == [Level(99.0, 2.0), Level(98.0, 3.0)]
    assert asks == [Level(101.0, 2.0), Level(103.0, 1.0)]
    assert [lv.price for lv in book.depth(levels=10)[0]] == [99.0, 98.0, 97.0]


def test_imbalance_weighs_sizes_over_the_top_n_levels() -> None:
    book = book_from(snapshot())  # bids 5, 10; asks 3, 7
    assert book.imbalance(levels=1) == pytest.approx((5 - 3) / (5 + 3))
    assert book.imbalance(levels=2) == pytest.approx((15 - 10) / (15 + 10))
    assert book_from(snapshot(bids=[], asks=[])).imbalance(levels=5) == 0.0


def test_empty_book_has_no_prices_and_is_not_valid() -> None:
    book = book_from(snapshot(bids=[], asks=[]))
    assert (book.best_bid, book.best_ask, book.spread, book.mid, book.microprice) == (None,) * 5
    assert not book.valid
    assert not OrderBook("AAPL", "XNAS").valid  # never had a snapshot


def test_stale_and_duplicate_deltas_are_ignored() -> None:
    book = book_from(snapshot(seq=10))
    assert not book.apply_delta(delta(10, Side.BUY, 99.5, 1.0))  # already in the snapshot
    assert book.apply_delta(delta(11, Side.BUY, 99.5, 1.0))
    assert not book.apply_delta(delta(11, Side.BUY, 99.5, 9.0))  # duplicate
    assert not book.apply_delta(delta(5, Side.SELL, 100.0, 9.0))  # stale
    assert book.best_bid == Level(99.5, 1.0)
    assert book.best_ask == Level(101.0, 3.0)
    assert (book.seq, book.gap_count, book.needs_resync) == (11, 0, False)


def test_a_gap_refuses_deltas_until_the_next_snapshot() -> None:
    book = book_from(snapshot(seq=10))
    assert not book.apply_delta(delta(12, Side.BUY, 100.0, 1.0))
    assert book.needs_resync
    assert not book.valid
    assert book.gap_count == 1
    assert not book.apply_delta(delta(13, Side.BUY, 100.0, 1.0))  # refused, not another gap
    assert book.best_bid == Level(99.0, 5.0)
    assert book.gap_count == 1

    book.apply_snapshot(snapshot(seq=20, bids=[(99.5, 1.0)]))
    assert not book.needs_resync
    assert book.valid
    assert book.apply_delta(delta(21, Side.BUY, 100.0, 1.0))
    assert book.best_bid == Level(100.0, 1.0)

    assert not book.apply_delta(delta(30, Side.BUY, 100.0, 1.0))
    assert book.gap_count == 2


def test_deltas_before_any_snapshot_are_refused_without_counting_a_gap() -> None:
    book = OrderBook("AAPL", "XNAS")
    assert not book.apply_delta(delta(1, Side.BUY, 100.0, 1.0))
    assert (book.best_bid, book.gap_count) == (None, 0)


def test_a_crossing_delta_is_applied_and_flagged_until_removed() -> None:
    book = book_from(snapshot())  # 99 x 101
    assert book.apply_delta(delta(11, Side.BUY, 102.0, 1.0))
    assert book.crossed
    assert not book.locked
    assert not book.valid
    assert book.best_bid == Level(102.0, 1.0)  # kept, not "fixed"
    assert book.spread == -1.0
    assert book.crossed_count == 1
    assert book.apply_delta(delta(12, Side.BUY, 102.0, 3.0))  # still crossed: no new event
    assert book.crossed_count == 1
    assert book.apply_delta(delta(13, Side.BUY, 102.0, 0.0))
    assert not book.crossed
    assert book.valid


def test_a_locking_delta_is_applied_and_flagged_until_removed() -> None:
    book = book_from(snapshot())
    assert book.apply_delta(delta(11, Side.SELL, 99.0, 1.0))
    assert book.locked
    assert not book.crossed
    assert not book.valid
    assert book.locked_count == 1
    assert book.spread == 0.0
    assert book.apply_delta(delta(12, Side.SELL, 99.0, 0.0))
    assert not book.locked
    assert book.valid


def test_deleting_an_absent_price_is_harmless_and_counted() -> None:
    book = book_from(snapshot())
    assert book.apply_delta(delta(11, Side.BUY, 42.0, 0.0))  # in sequence, so it advances seq
    assert book.missing_deletes == 1
    assert book.seq == 11
    assert book.depth(levels=10) == book_from(snapshot()).depth(levels=10)


def test_negative_sizes_and_misrouted_messages_fail_loudly() -> None:
    book = book_from(snapshot())
    with pytest.raises(ValueError, match="bad level"):
        book.apply_delta(delta(11, Side.BUY, 99.0, -1.0))
    with pytest.raises(ValueError, match="routed"):
        book.apply_delta(delta(11, Side.BUY, 99.0, 1.0, venue="ARCX"))


# --- across venues ---------------------------------------------------------------


def test_nbbo_takes_the_best_bid_and_best_ask_from_different_venues() -> None:
    book = ConsolidatedBook("AAPL")
    book.apply(snapshot(venue="XNAS", bids=[(99.0, 5.0)], asks=[(101.0, 5.0)]))
    book.apply(snapshot(venue="ARCX", bids=[(99.5, 1.0)], asks=[(101.5, 1.0)]))
    book.apply(snapshot(venue="BATS", bids=[(98.0, 1.0)], asks=[(100.5, 2.0)]))
    nbbo = book.nbbo()
    assert (nbbo.bid, nbbo.bid_venue) == (Level(99.5, 1.0), "ARCX")
    assert (nbbo.ask, nbbo.ask_venue) == (Level(100.5, 2.0), "BATS")
    assert not nbbo.crossed


def test_nbbo_ignores_a_venue_that_needs_resync_or_is_crossed_itself() -> None:
    book = ConsolidatedBook("AAPL")
    book.apply(snapshot(venue="XNAS", bids=[(99.0, 5.0)], asks=[(101.0, 5.0)]))
    book.apply(snapshot(venue="ARCX", bids=[(99.5, 1.0)], asks=[(100.5, 1.0)], seq=1))
    assert book.nbbo().bid_venue == "ARCX"
    assert not book.apply(delta(5, Side.BUY, 99.6, 1.0, venue="ARCX"))  # gap
    assert book.nbbo() == NBBO(Level(99.0, 5.0), "XNAS", Level(101.0, 5.0), "XNAS")

    book.apply(snapshot(venue="ARCX", bids=[(99.5, 1.0)], asks=[(100.5, 1.0)], seq=6))
    assert book.apply(delta(7, Side.BUY, 100.6, 1.0, venue="ARCX"))  # ARCX crosses itself
    assert book.nbbo().bid_venue == "XNAS"
    assert book.nbbo().ask_venue == "XNAS"


def test_nbbo_ties_go_to_the_larger_size_then_the_venue_name() -> None:
    book = ConsolidatedBook("AAPL")
    book.apply(snapshot(venue="XNAS", bids=[(99.0, 5.0)], asks=[(101.0, 2.0)]))
    book.apply(snapshot(venue="ARCX", bids=[(99.0, 8.0)], asks=[(101.0, 2.0)]))
    nbbo = book.nbbo()
    assert (nbbo.bid_venue, nbbo.bid) == ("ARCX", Level(99.0, 8.0))
    assert (nbbo.ask_venue, nbbo.ask) == ("ARCX", Level(101.0, 2.0))


def test_a_cross_between_venues_is_flagged_not_dropped() -> None:
    book = ConsolidatedBook("AAPL")
    book.apply(snapshot(venue="XNAS", bids=[(99.0, 5.0)], asks=[(101.0, 5.0)]))
    book.apply(snapshot(venue="ARCX", bids=[(97.0, 1.0)], asks=[(100.0, 1.0)], seq=1))
    assert not book.crossed
    assert book.apply(delta(2, Side.SELL, 98.5, 1.0, venue="ARCX"))
    nbbo = book.nbbo()
    assert nbbo.crossed
    assert book.crossed
    assert (nbbo.bid_venue, nbbo.ask_venue) == ("XNAS", "ARCX")
    assert book.nbbo_crossed_count == 1


def test_registry_routes_by_symbol_and_makes_books_on_first_sight() -> None:
    registry = BookRegistry()
    assert registry.get("AAPL") is None
    registry.apply(snapshot(symbol="AAPL"))
    registry.apply(snapshot(symbol="MSFT", bids=[(400.0, 1.0)], asks=[(401.0, 1.0)]))
    assert registry.apply(delta(11, Side.BUY, 99.5, 1.0, symbol="AAPL"))
    aapl, msft = registry.get("AAPL"), registry.get("MSFT")
    assert aapl is not None
    assert msft is not None
    assert aapl.nbbo().bid == Level(99.5, 1.0)
    assert msft.nbbo().bid == Level(400.0, 1.0)
    assert registry.symbols() == ["AAPL", "MSFT"]


# --- invariants against a plain-dict reference ------------------------------------

prices = st.integers(min_value=90, max_value=110).map(lambda p: p / 2)
deltas = st.lists(
    st.tuples(
        st.sampled_from([Side.BUY, Side.SELL]),
        prices,
        st.sampled_from([0.0, 0.0, 1.0, 2.5, 10.0]),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(deltas)
def test_random_deltas_keep_the_book_equal_to_a_plain_dict(
    steps: list[tuple[Side, float, float]],
) -> None:
    book = book_from(snapshot(bids=[], asks=[], seq=0))
    reference: dict[Side, dict[float, float]] = {Side.BUY: {}, Side.SELL: {}}
    for seq, (side, price, size) in enumerate(steps, start=1):
        assert book.apply_delta(delta(seq, side, price, size))
        if size == 0:
            reference[side].pop(price, None)
        else:
            reference[side][price] = size

        bids, asks = book.depth(levels=1000)
        bid_prices, ask_prices = [lv.price for lv in bids], [lv.price for lv in asks]
        assert all(a > b for a, b in pairwise(bid_prices))
        assert all(a < b for a, b in pairwise(ask_prices))
        assert all(lv.size > 0 for lv in bids + asks)
        assert {lv.price: lv.size for lv in bids} == reference[Side.BUY]
        assert {lv.price: lv.size for lv in asks} == reference[Side.SELL]

        best_bid = max(reference[Side.BUY], default=None)
        best_ask = min(reference[Side.SELL], default=None)
        assert (book.best_bid.price if book.best_bid else None) == best_bid
        assert (book.best_ask.price if book.best_ask else None) == best_ask
        if best_bid is not None and best_ask is not None:
            assert book.crossed == (best_bid > best_ask)
            assert book.locked == (best_bid == best_ask)
        else:
            assert not book.crossed
            assert not book.locked
        assert -1.0 <= book.imbalance(levels=3) <= 1.0
