"""SSEHub: a snapshot first, shared diffs for clients that keep up, coalescing for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta

from models.market_data import Tick
from realtime.price_cache import PriceCache
from realtime.sse_hub import SSEHub

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def _tick(symbol: str, price: float, n: int) -> Tick:
    return Tick(symbol=symbol, price=price, size=1, ts=T0 + timedelta(milliseconds=n))


def _parse(raw: bytes) -> dict[str, str]:
    """One SSE event as sent on the wire, back into its fields."""
    text = raw.decode()
    assert text.endswith("\r\n\r\n")
    return dict(line.split(": ", 1) for line in text.strip().split("\r\n"))


def _prices(raw: bytes) -> dict[str, float]:
    return {row["symbol"]: row["price"] for row in json.loads(_parse(raw)["data"])}


def test_snapshot_then_only_changes_and_filters() -> None:
    async def scenario() -> None:
        cache = PriceCache()
        for i, s in enumerate(("AAA", "BBB", "CCC")):
            cache.update(_tick(s, 10 + i, 0))
        hub = SSEHub(cache, interval_s=0.01)
        await hub.start()
        everything = hub.stream()
        only_b = hub.stream({"BBB"})
        first = await anext(everything)
        assert _parse(first)["event"] == "snapshot"
        assert _parse(first)["retry"] == "3000"
        assert _prices(first) == {"AAA": 10, "BBB": 11, "CCC": 12}
        assert _prices(await anext(only_b)) == {"BBB": 11}
        cache.update(_tick("AAA", 20, 1))
        cache.update(_tick("BBB", 21, 1))
        update = await asyncio.wait_for(anext(everything), 1)
        assert _parse(update)["event"] == "prices"
        assert _prices(update) == {"AAA": 20, "BBB": 21}
        assert _prices(await asyncio.wait_for(anext(only_b), 1)) == {"BBB": 21}
        cache.update(_tick("AAA", 30, 2))  # nothing for the BBB client
        assert _prices(await asyncio.wait_for(anext(everything), 1)) == {"AAA": 30}
        cache.update(_tick("BBB", 31, 3))
        assert _prices(await asyncio.wait_for(anext(only_b), 1)) == {
            "BBB": 31
        }  # skipped AAA-only frame
        assert hub.clients == 2
        await everything.aclose()
        await only_b.aclose()
        assert hub.clients == 0
        await hub.stop()

    asyncio.run(scenario())


def test_a_stalled_client_gets_the_latest_state_and_never_delays_a_live_one() -> None:
    async def scenario() -> None:
        cache = PriceCache()
        cache.update(_tick("AAA", 1, 0))
        hub = SSEHub(cache, interval_s=0.005)
        await hub.start()
        live, stalled = hub.stream(), hub.stream()
        await anext(live)
        await anext(stalled)
        received = 0
        for n in range(1, 40):  # 40 changes while `stalled` reads nothing
            cache.update(_tick("AAA", n + 1, n))
            event = await asyncio.wait_for(anext(live), 1)
            received += 1
            assert _prices(event) == {"AAA": n + 1}
        caught_up = await asyncio.wait_for(anext(stalled), 1)
        assert _prices(caught_up) == {"AAA": 40}  # one event with the current price, no backlog
        assert int(_parse(caught_up)["id"]) == cache.version
        assert received == 39
        await live.aclose()
        await stalled.aclose()
        await hub.stop()

    asyncio.run(scenario())


def test_clients_that_keep_up_share_the_same_encoded_bytes() -> None:
    async def scenario() -> None:
        cache = PriceCache()
        cache.update(_tick("AAA", 1, 0))
        hub = SSEHub(cache, interval_s=0.005)
        await hub.start()
        one, two, filtered = hub.stream(), hub.stream(), hub.stream({"AAA"})
        for stream in (one, two, filtered):
            await anext(stream)
        cache.update(_tick("AAA", 2, 1))
        hub.notify()
        a, b, c = [await asyncio.wait_for(anext(s), 1) for s in (one, two, filtered)]
        assert a is b  # one encoding per frame and filter, not per client
        assert a == c
        assert a is not c
        for stream in (one, two, filtered):
            await stream.aclose()
        await hub.stop()

    asyncio.run(scenario())


def test_a_notified_change_goes_out_without_waiting_for_the_interval() -> None:
    async def scenario() -> None:
        cache = PriceCache()
        cache.update(_tick("AAA", 1, 0))
        hub = SSEHub(cache, interval_s=30)  # a timer-driven hub would not publish for 30 s
        await hub.start()
        stream = hub.stream()
        await anext(stream)
        cache.update(_tick("AAA", 2, 1))
        hub.notify()
        assert _prices(await asyncio.wait_for(anext(stream), 5)) == {"AAA": 2}
        await stream.aclose()
        await hub.stop()

    asyncio.run(scenario())


def test_next_frame_returns_after_every_client_woken_by_the_frame_got_it() -> None:
    """Work waiting for a frame (the GC policy's full collection) runs after the fan-out,
    even when it started waiting before the clients did."""

    async def scenario() -> None:
        cache = PriceCache()
        cache.update(_tick("AAA", 1, 0))
        hub = SSEHub(cache, interval_s=0.005)
        await hub.start()
        streams = [hub.stream() for _ in range(20)]
        for stream in streams:
            await anext(stream)
        pending: list[asyncio.Future[bytes]] = []

        async def after_frame() -> int:
            await hub.next_frame()
            return sum(task.done() for task in pending)

        after = asyncio.create_task(after_frame())
        await asyncio.sleep(0)  # waits for the frame before any client does
        pending.extend(asyncio.ensure_future(anext(stream)) for stream in streams)
        await asyncio.sleep(0)
        cache.update(_tick("AAA", 2, 1))
        hub.notify()
        assert await asyncio.wait_for(after, 1) == len(streams)
        for stream in streams:
            await stream.aclose()
        await hub.stop()

    asyncio.run(scenario())


def test_stop_releases_waiting_clients() -> None:
    async def scenario() -> None:
        cache = PriceCache()
        hub = SSEHub(cache, interval_s=0.01)
        await hub.start()
        stream = hub.stream()
        await anext(stream)

        async def next_event() -> bytes:
            return await anext(stream)

        waiter = asyncio.create_task(next_event())
        await asyncio.sleep(0.02)
        await hub.stop()
        with contextlib.suppress(StopAsyncIteration):
            await asyncio.wait_for(waiter, 1)
        assert hub.clients == 0

    asyncio.run(scenario())
