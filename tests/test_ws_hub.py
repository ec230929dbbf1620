"""WSHub: filters, one serialisation per filter, and the drop-oldest policy for slow clients."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from models.market_data import Tick
from realtime.price_cache import PriceCache
from realtime.ws_hub import Topic, WSHub

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    async def scenario() -> None:
        hub = WSHub(PriceCache(), queue_size=3)
        slow = hub.connect()
        hub.subscribe(slow, [Topic.FILLS], None)
        for n in range(5):
            hub.publish(Topic.FILLS, {"n": n})
        assert slow.dropped == hub.dropped == 2
        kept = [json.loads(slow.queue.get_nowait())["data"]["n"] for _ in range(3)]
        assert kept == [2, 3, 4]

    asyncio.run(scenario())


def test_topic_and_symbol_filters_decide_who_receives() -> None:
    async def scenario() -> None:
        hub = WSHub(PriceCache())
        aapl, everything, other = hub.connect(), hub.connect(), hub.connect()
        hub.subscribe(aapl, [Topic.ORDERS], frozenset({"AAPL"}))
        hub.subscribe(everything, [Topic.ORDERS], None)
        hub.subscribe(other, [Topic.FILLS], None)
        assert hub.publish(Topic.ORDERS, {"id": 1}, symbol="AAPL") == 2
        assert hub.publish(Topic.ORDERS, {"id": 2}, symbol="MSFT") == 1
        assert aapl.queue.qsize() == 1
        assert everything.queue.qsize() == 2
        assert other.queue.qsize() == 0
        hub.unsubscribe(everything, [Topic.ORDERS])
        assert hub.publish(Topic.ORDERS, {"id": 3}, symbol="AAPL") == 1

    asyncio.run(scenario())


def test_market_data_subscribers_get_a_snapshot_then_filtered_changes() -> None:
    async def scenario() -> None:
        cache = PriceCache()
        for i, s in enumerate(("AAA", "BBB")):
            cache.update(Tick(s, 10 + i, 1, T0))
        hub = WSHub(cache, interval_s=0.01)
        await hub.start()
        client = hub.connect()
        hub.subscribe(client, [Topic.MARKET_DATA], frozenset({"BBB"}))
        first = json.loads(await asyncio.wait_for(client.queue.get(), 1))
        assert first["type"] == "market_data"
        assert [r["symbol"] for r in first["data"]] == ["BBB"]
        cache.update(Tick("AAA", 20, 1, T0 + timedelta(seconds=1)))
        cache.update(Tick("BBB", 21, 1, T0 + timedelta(seconds=1)))
        update = json.loads(await asyncio.wait_for(client.queue.get(), 1))
        assert [(r["symbol"], r["price"]) for r in update["data"]] == [("BBB", 21)]
        await hub.stop()
        assert not hub.running

    asyncio.run(scenario())
