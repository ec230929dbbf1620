"""GET /api/book/{symbol}: a real BookService fed by the real simulated feed, over HTTP."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx
import pytest
from fastapi import FastAPI

from api.errors import register_error_handlers
from api.routers.book import router
from models.book import BookOut, NBBOOut
from models.market_data import Tick
from realtime.book_service import BookService
from realtime.price_cache import PriceCache
from realtime.sources.sim_book import SimulatedBookFeed

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@dataclass
class Market:
    """The pieces a test drives by hand: prices in, feed steps, the API out."""

    cache: PriceCache
    feed: SimulatedBookFeed
    books: BookService
    app: FastAPI
    clock: count[int]

    def set_price(self, symbol: str, price: float) -> None:
        self.cache.update(Tick(symbol, price, 100.0, T0 + timedelta(seconds=next(self.clock))))

    def step(self, drop: int | None = None) -> None:
        """One feed step into the service; `drop` loses that delta of AAPL@SIMA on the way."""
        aapl_sima = 0
        for message in self.feed.step():
            if (message.symbol, message.venue) == ("AAPL", "SIMA"):
                aapl_sima += 1
                if aapl_sima - 1 == drop:
                    continue
            self.books.apply(message)

    def get(self, path: str) -> tuple[int, dict[str, object]]:
        response = get(self.app, path)
        return response.status_code, response.json()


@dataclass
class _Runtime:
    """The one attribute of the runtime the book router reads."""

    books: BookService


def get(app: FastAPI, path: str) -> httpx.Response:
    """One request through the ASGI app in-process: no server, no socket."""

    async def fetch() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://book.test") as client:
            return await client.get(path)

    return asyncio.run(fetch())


def make_app(books: BookService) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    register_error_handlers(app)
    app.state.runtime = _Runtime(books)
    return app


@pytest.fixture
def market() -> Market:
    cache = PriceCache()
    feed = SimulatedBookFeed(cache, seed=5)
    books = BookService(feed)
    m = Market(cache, feed, books, make_app(books), count())
    m.set_price("AAPL", 187.23)
    m.set_price("MSFT", 410.5)
    for _ in range(3):
        m.step()
    return m


def test_the_top_of_book_is_the_best_of_the_venues(market: Market) -> None:
    status, body = market.get("/api/book/aapl")
    assert status == 200
    book = BookOut.model_validate(body)
    assert book.symbol == "AAPL"
    assert (book.valid, book.crossed, book.locked) == (True, False, False)
    assert [v.venue for v in book.venues] == ["SIMA", "SIMB"]
    best_bids = {v.venue: v.bids[0] for v in book.venues}
    best_asks = {v.venue: v.asks[0] for v in book.venues}
    nbbo = book.nbbo
    assert nbbo.bid == max(lv.price for lv in best_bids.values())
    assert nbbo.ask == min(lv.price for lv in best_asks.values())
    assert nbbo.bid_venue is not None
    assert nbbo.ask_venue is not None
    assert best_bids[nbbo.bid_venue].price == nbbo.bid
    assert best_bids[nbbo.bid_venue].size == nbbo.bid_size
    assert best_asks[nbbo.ask_venue].size == nbbo.ask_size
    assert nbbo.bid is not None
    assert nbbo.ask is not None
    assert nbbo.spread == pytest.approx(nbbo.ask - nbbo.bid)
    assert nbbo.spread is not None
    assert nbbo.spread > 0
    assert nbbo.mid == pytest.approx((nbbo.bid + nbbo.ask) / 2)
    assert nbbo.microprice is not None
    assert nbbo.bid < nbbo.microprice < nbbo.ask
    assert nbbo.imbalance is not None
    assert -1 <= nbbo.imbalance <= 1
    assert book.ts is not None


def test_depth_honours_levels_best_first(market: Market) -> None:
    _, shallow = market.get("/api/book/MSFT?levels=3")
    _, default = market.get("/api/book/MSFT")
    assert BookOut.model_validate(default).levels == 10
    for body, n in ((shallow, 3), (default, 10)):
        for venue in BookOut.model_validate(body).venues:
            bids, asks = [lv.price for lv in venue.bids], [lv.price for lv in venue.asks]
            assert len(bids) == len(asks) == n
            assert bids == sorted(bids, reverse=True)
            assert asks == sorted(asks)
            assert bids[0] < asks[0]
            assert venue.seq > 1
            assert (venue.needs_resync, venue.gap_count) == (False, 0)


def test_an_unknown_symbol_is_404_naming_it(market: Market) -> None:
    status, body = market.get("/api/book/zzzz")
    assert status == 404
    assert body["status"] == 404
    assert body["title"] == "Not found"
    assert "ZZZZ" in str(body["detail"])


@pytest.mark.parametrize("levels", ["0", "51", "500", "-1", "ten"])
def test_levels_outside_1_to_50_are_422(market: Market, levels: str) -> None:
    status, _ = market.get(f"/api/book/AAPL?levels={levels}")
    assert status == 422


def test_without_a_feed_every_symbol_is_404_saying_why() -> None:
    response = get(make_app(BookService(None)), "/api/book/AAPL")
    assert response.status_code == 404
    assert "no book feed" in response.json()["detail"]


def test_a_venue_waiting_for_a_snapshot_shows_it_and_leaves_the_nbbo(market: Market) -> None:
    market.set_price("AAPL", 188.0)  # every level moves: many deltas per book
    market.step(drop=3)
    _, body = market.get("/api/book/AAPL?levels=2")
    book = BookOut.model_validate(body)
    sima = book.venues[0]
    assert (sima.venue, sima.needs_resync, sima.valid, sima.gap_count) == ("SIMA", True, False, 1)
    assert (book.nbbo.bid_venue, book.nbbo.ask_venue) == ("SIMB", "SIMB")
    assert book.valid  # SIMB alone still quotes a sane market

    market.step()
    _, body = market.get("/api/book/AAPL?levels=2")
    sima = BookOut.model_validate(body).venues[0]
    assert (sima.needs_resync, sima.valid, sima.gap_count) == (False, True, 1)
    assert (market.books.gaps, market.books.resync_requests, market.books.resyncs) == (1, 1, 1)


def test_a_one_sided_book_serialises_its_missing_figures_as_null(market: Market) -> None:
    market.set_price("DUST", 0.004)  # below one tick: there is no bid price to quote
    market.step()
    status, body = market.get("/api/book/DUST")
    assert status == 200
    nbbo = body["nbbo"]
    assert isinstance(nbbo, dict)
    for field in ("bid", "bid_size", "bid_venue", "spread", "mid", "microprice"):
        assert nbbo[field] is None, field
    assert nbbo["ask"] in (0.01, 0.02, 0.03)  # one tick up, or a venue backed off
    assert nbbo["imbalance"] == -1.0
    assert body["valid"] is True


def test_non_finite_figures_become_null_never_nan() -> None:
    nbbo = NBBOOut(spread=math.nan, mid=math.inf, microprice=-math.inf, imbalance=0.25)
    assert (nbbo.spread, nbbo.mid, nbbo.microprice, nbbo.imbalance) == (None, None, None, 0.25)
    text = nbbo.model_dump_json()
    assert "NaN" not in text
    assert json.loads(text)["spread"] is None
