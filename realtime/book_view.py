"""Shape one consolidated book into its API view (`models.book.BookOut`).

Pure: reads the book, changes nothing, no clock. Kept apart from the book
itself so `order_book.py` stays free of pydantic and of presentation choices
(which venues count towards the imbalance, how deep to look).
"""

from __future__ import annotations

from models.book import BookLevelOut, BookOut, NBBOOut, VenueBookOut
from realtime.order_book import ConsolidatedBook, Level, OrderBook

_NOISE_DECIMALS = 10


def book_view(book: ConsolidatedBook, levels: int) -> BookOut:
    """NBBO, flags and the best `levels` per side of every venue, venues by name."""
    nbbo = book.nbbo()
    bid, ask = nbbo.bid, nbbo.ask
    spread: float | None = None
    mid: float | None = None
    microprice: float | None = None
    if bid is not None and ask is not None:
        # Rounded past any real tick, so a one-cent spread reads 0.01, not 0.00999999999999.
        spread = round(ask.price - bid.price, _NOISE_DECIMALS)
        mid = round((bid.price + ask.price) / 2, _NOISE_DECIMALS)
        microprice = _microprice(bid, ask)
    valid_books = [b for b in book.books.values() if b.valid]
    stamps = [b.ts for b in book.books.values() if b.ts is not None]
    return BookOut(
        symbol=book.symbol,
        ts=max(stamps, default=None),
        levels=levels,
        nbbo=NBBOOut(
            bid=None if bid is None else bid.price,
            bid_size=None if bid is None else bid.size,
            bid_venue=nbbo.bid_venue,
            ask=None if ask is None else ask.price,
            ask_size=None if ask is None else ask.size,
            ask_venue=nbbo.ask_venue,
            spread=spread,
            mid=mid,
            microprice=microprice,
            imbalance=_imbalance(valid_books, levels),
        ),
        crossed=nbbo.crossed,
        locked=nbbo.locked,
        valid=bool(valid_books) and not (nbbo.crossed or nbbo.locked),
        venues=[_venue_view(book.books[v], levels) for v in sorted(book.books)],
    )


def _venue_view(book: OrderBook, levels: int) -> VenueBookOut:
    bids, asks = book.depth(levels)
    return VenueBookOut(
        venue=book.venue,
        seq=book.seq,
        ts=book.ts,
        valid=book.valid,
        crossed=book.crossed,
        locked=book.locked,
        needs_resync=book.needs_resync,
        gap_count=book.gap_count,
        bids=[BookLevelOut(price=lv.price, size=lv.size) for lv in bids],
        asks=[BookLevelOut(price=lv.price, size=lv.size) for lv in asks],
    )


def _microprice(bid: Level, ask: Level) -> float | None:
    """Mid leaned towards the thinner side; None if neither side has size."""
    if bid.size + ask.size == 0:
        return None
    return (bid.price * ask.size + ask.price * bid.size) / (bid.size + ask.size)


def _imbalance(books: list[OrderBook], levels: int) -> float | None:
    """Over the best `levels` prices per side, sizes at a price summed across `books`.

    None when there is no size at all (rather than 0, which would claim balance).
    """
    bid_sizes: dict[float, float] = {}
    ask_sizes: dict[float, float] = {}
    for b in books:
        bids, asks = b.depth(levels)
        for lv in bids:
            bid_sizes[lv.price] = bid_sizes.get(lv.price, 0.0) + lv.size
        for lv in asks:
            ask_sizes[lv.price] = ask_sizes.get(lv.price, 0.0) + lv.size
    bid_total = sum(bid_sizes[p] for p in sorted(bid_sizes, reverse=True)[:levels])
    ask_total = sum(ask_sizes[p] for p in sorted(ask_sizes)[:levels])
    total = bid_total + ask_total
    return None if total == 0 else (bid_total - ask_total) / total
