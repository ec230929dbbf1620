"""The ingest tier's prices and books reach its replicas as they are: same prices, same
versions, same books, on the in-process bus and on a real Redis; a replica started late
catches up from the snapshot; a failed publish is folded into the next; a bad message is
skipped, not fatal; a restarted ingest process keeps the versions counting up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from models.bus import MARKET_BOOKS, MARKET_PRICES, MARKET_SNAPSHOT, BusMessage
from models.enums import Side
from models.market_data import Tick
from realtime import market_stream
from realtime.book_service import BookService
from realtime.market_stream import MarketFollower, MarketPublisher
from realtime.order_book import BookDelta, BookSnapshot, Level
from realtime.price_cache import PriceCache, Row
from services.bus import Bus, BusUnavailableError, InProcessBus, RedisStreamsBus
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        memory = InProcessBus(maxlen=50)
        yield memory
        await memory.close()
        return
    server: PrivateRedis = request.getfixturevalue("redis_server")
    redis = RedisStreamsBus(server.url, maxlen=50, backoff_initial_s=0.02, backoff_max_s=0.1)
    yield redis
    await redis.close()


class Ingest:
    """The ingest side: a cache and books fed by hand, and the publisher over them."""

    def __init__(self, bus: Bus, start_version: int = 0) -> None:
        self.cache = PriceCache(start_version)
        self.books = BookService(None)
        self.publisher = MarketPublisher(
            bus, self.cache, self.books, interval_s=0.01, snapshot_every_s=3600
        )
        self.t = T0

    def tick(self, symbol: str, price: float) -> None:
        self.t += timedelta(milliseconds=10)
        self.cache.update(Tick(symbol, price, 1.0, self.t))

    def book(self, symbol: str, seq: int, bid: float, ask: float) -> None:
        self.books.apply(
            BookSnapshot(symbol, "SIMA", seq, [Level(bid, 100)], [Level(ask, 200)], self.t)
        )


class Replica:
    def __init__(self, bus: Bus) -> None:
        self.cache = PriceCache()
        self.told: list[int] = []
        self.follower = MarketFollower(bus, self.cache, self.told.append, block_ms=50)
        self.books = BookService(self.follower)

    async def __aenter__(self) -> Replica:
        await self.books.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.books.stop()


def state(cache: PriceCache) -> tuple[int, list[Row]]:
    version, rows = cache.rows_since(0)
    return version, sorted(rows)


async def eventually(check: Callable[[], bool | Awaitable[bool]], within_s: float = 15) -> None:
    """Wait for `check` to hold; `within_s` bounds a hang, it is not a speed requirement (a
    CI machine running flows on every core once took over 5 s to deliver a snapshot)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not within the time allowed")


async def test_replicas_hold_the_same_prices_at_the_same_versions(bus: Bus) -> None:
    ingest = Ingest(bus)
    async with Replica(bus) as one, Replica(bus) as two:
        for step in range(20):
            ingest.tick("AAPL", 100 + step)
            ingest.tick("MSFT", 300 - step)
            if step % 3 == 0:
                await ingest.publisher.step()
        ingest.tick("KO", 60.0)
        await ingest.publisher.step()

        await eventually(lambda: state(one.cache) == state(ingest.cache) == state(two.cache))
    assert one.cache.version == ingest.cache.version == 41
    assert one.cache.get("AAPL") == ingest.cache.get("AAPL")  # prev price and day open too
    assert sum(one.told) == one.follower.applied > 0  # the hubs were told of every change


async def test_a_replica_started_late_catches_up_from_the_snapshot(
    bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prices stream keeps 50 messages here; 200 steps later only the snapshot holds
    the symbol that ticked first, and the replica reads from the snapshot on."""
    monkeypatch.setattr(market_stream, "UPDATES_KEPT", 50)
    ingest = Ingest(bus)
    ingest.tick("OLD", 5.0)
    ingest.book("OLD", 1, 4.9, 5.1)
    await ingest.publisher.step()  # the first step also publishes the (due) snapshot
    for step in range(200):
        ingest.tick("AAPL", 100 + step % 7)
        await ingest.publisher.step()
    await ingest.publisher.publish_snapshot()
    ingest.tick("AAPL", 99.0)  # changed after the snapshot, published after it
    await ingest.publisher.step()

    held = await bus.tail(MARKET_PRICES, last_id="0-0", block_ms=0, count=1000)
    assert len(held) == 50
    assert "OLD" not in {row[0] for d in held for row in d.message.data["rows"]}
    async with Replica(bus) as late:
        await eventually(lambda: state(late.cache) == state(ingest.cache))
        assert late.follower.snapshots == 1
        assert late.books.view("OLD").nbbo.bid == 4.9
        assert late.follower.messages < 10  # from the snapshot on, not the stream's history


async def test_books_reach_replicas_whole_and_a_stale_snapshot_copy_does_not_undo_them(
    bus: Bus,
) -> None:
    ingest = Ingest(bus)
    ingest.book("AAPL", 1, 99.0, 101.0)
    ingest.books.apply(BookDelta("AAPL", "SIMA", 2, Side.BUY, 99.5, 10, ingest.t))
    await ingest.publisher.step()
    async with Replica(bus) as replica:
        await eventually(lambda: replica.books.symbols() == ["AAPL"])
        assert replica.books.view("AAPL") == ingest.books.view("AAPL")

        ingest.books.apply(BookDelta("AAPL", "SIMA", 3, Side.SELL, 100.5, 5, ingest.t))
        await ingest.publisher.step()
        await eventually(lambda: replica.books.view("AAPL").nbbo.ask == 100.5)

        stale = {"symbol": "AAPL", "venue": "SIMA", "seq": 1, "ts": T0.isoformat()}
        stale |= {"bids": [[1.0, 1.0]], "asks": [[2.0, 1.0]]}
        await bus.publish(
            MARKET_SNAPSHOT, BusMessage(type="snapshot", data={"rows": [], "books": [stale]})
        )
        await eventually(lambda: replica.follower.snapshots == 1)
        assert replica.books.view("AAPL") == ingest.books.view("AAPL")


async def test_a_bad_message_is_counted_and_skipped_and_the_replica_keeps_following(
    bus: Bus,
) -> None:
    ingest = Ingest(bus)
    async with Replica(bus) as replica:
        await bus.publish(MARKET_PRICES, BusMessage(type="prices", data={"rows": [["AAPL"]]}))
        ingest.tick("AAPL", 101.0)
        await ingest.publisher.step()
        await eventually(lambda: replica.cache.get("AAPL") is not None)
        assert replica.follower.unreadable == 1
        assert replica.follower.running


async def test_a_publish_that_failed_while_redis_was_away_is_folded_into_the_next_one(
    redis_server: PrivateRedis,
) -> None:
    bus = RedisStreamsBus(redis_server.url, backoff_initial_s=0.02, backoff_max_s=0.1)
    ingest = Ingest(bus)
    try:
        async with Replica(bus) as replica:
            ingest.tick("AAPL", 100.0)
            await ingest.publisher.step()
            await eventually(lambda: replica.cache.get("AAPL") is not None)

            redis_server.stop()
            ingest.tick("AAPL", 101.0)
            ingest.tick("MSFT", 300.0)
            with pytest.raises(BusUnavailableError):
                await ingest.publisher.step()
            redis_server.start()  # back, and empty (no persistence, as dev and CI run it)
            await ingest.publisher.step()
            await eventually(lambda: state(replica.cache) == state(ingest.cache))
    finally:
        await bus.close()


async def test_a_restarted_ingest_process_keeps_the_versions_counting_up(bus: Bus) -> None:
    first = Ingest(bus, start_version=1_000)
    async with Replica(bus) as replica:
        first.tick("AAPL", 100.0)
        first.tick("MSFT", 300.0)
        await first.publisher.step()
        await eventually(lambda: replica.cache.version == 1_002)

        second = Ingest(bus, start_version=5_000)  # what the clock gives a restart
        second.t = first.t
        second.tick("AAPL", 102.0)
        await second.publisher.step()
        await eventually(lambda: replica.cache.version == 5_001)
        quote = replica.cache.get("AAPL")
        assert quote is not None
        assert quote.price == 102.0
        assert replica.cache.get("MSFT") is not None  # untouched by the restart: kept


async def test_a_replica_started_before_the_ingest_tier_is_not_ready_until_it_publishes(
    bus: Bus,
) -> None:
    async with Replica(bus) as early:
        await asyncio.sleep(0.1)
        assert not early.follower.running  # following, but holding nothing: /ready says 503
        ingest = Ingest(bus)
        ingest.tick("AAPL", 100.0)
        await ingest.publisher.step()
        await eventually(lambda: early.follower.running)
        assert state(early.cache) == state(ingest.cache)


async def test_the_update_streams_keep_only_what_replicas_can_need(bus: Bus) -> None:
    """Replicas catch up from the snapshot: the updates are kept to `UPDATES_KEPT`, not the
    bus's cap (under which Redis grew by a quarter of a gigabyte in a soak)."""
    ingest = Ingest(bus)
    for step in range(market_stream.UPDATES_KEPT + 100):
        ingest.tick("AAPL", 100 + step % 5)
        ingest.book("AAPL", step + 1, 99.0 + step % 3, 101.0)
        await ingest.publisher.step()
    for stream in (MARKET_PRICES, MARKET_BOOKS):
        held = await bus.tail(stream, last_id="0-0", block_ms=0, count=10_000)
        assert len(held) == market_stream.UPDATES_KEPT, stream
