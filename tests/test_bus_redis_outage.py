"""RedisStreamsBus through a Redis outage: a private redis-server is stopped and restarted.

The server runs like dev/CI run it (`--save "" --appendonly no`), so the
restart comes back empty: the guarantee tested is that publishing and
consuming resume without recreating the bus, not that data survives.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis import Redis

from models.bus import BusMessage
from services.bus import BusUnavailableError, RedisStreamsBus
from tests.private_redis import PrivateRedis

pytestmark = pytest.mark.anyio

STREAM = "outage:signals"
GROUP = "oms"


@pytest.fixture
async def bus(redis_server: PrivateRedis) -> AsyncIterator[RedisStreamsBus]:
    bus = RedisStreamsBus(
        redis_server.url,
        connect_timeout_s=0.5,
        command_timeout_s=1.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    yield bus
    await bus.close()


def _message(n: int) -> BusMessage:
    return BusMessage(type="signal", data={"n": n})


async def _eventually(check: Callable[[], Awaitable[bool]], within_s: float = 5) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_publishing_and_consuming_resume_after_redis_restarts(
    bus: RedisStreamsBus, redis_server: PrivateRedis
) -> None:
    await bus.publish(STREAM, _message(1))
    [before] = await bus.read_group(STREAM, GROUP, "a", block_ms=200)
    await bus.ack(before, GROUP)

    redis_server.stop()

    with pytest.raises(BusUnavailableError):
        await bus.publish(STREAM, _message(2))
    started = time.monotonic()
    assert await bus.read_group(STREAM, GROUP, "a", block_ms=200) == []
    assert time.monotonic() - started < 2  # failed fast, backed off, did not hang
    assert await bus.tail(STREAM, last_id="0", block_ms=0) == []
    assert not await bus.healthy()
    assert bus.status.startswith("degraded")

    redis_server.start()

    assert await _eventually(bus.healthy)
    assert bus.status == "ok"
    await bus.publish(STREAM, _message(3))
    [after] = await bus.read_group(STREAM, GROUP, "a", block_ms=1_000)  # group re-created
    assert after.message.data == {"n": 3}
    await bus.ack(after, GROUP)
    assert await bus.pending_count(STREAM, GROUP) == 0


async def test_a_consumer_loop_keeps_running_through_an_outage(
    bus: RedisStreamsBus, redis_server: PrivateRedis
) -> None:
    received: list[int] = []

    async def consume() -> None:
        while True:
            for delivery in await bus.read_group(STREAM, GROUP, "loop", block_ms=200):
                received.append(delivery.message.data["n"])
                with contextlib.suppress(BusUnavailableError):  # stays pending; reclaimed later
                    await bus.ack(delivery, GROUP)

    async def has(n: int) -> bool:
        return n in received

    consumer = asyncio.create_task(consume())
    try:
        await bus.publish(STREAM, _message(1))
        assert await _eventually(lambda: has(1))

        redis_server.stop()
        await asyncio.sleep(0.6)  # several failed reads and backoffs
        assert not consumer.done()
        assert bus.status.startswith("degraded")

        redis_server.start()
        assert await _eventually(bus.healthy)
        await bus.publish(STREAM, _message(2))

        assert await _eventually(lambda: has(2))
        assert not consumer.done()
        assert received == [1, 2]
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer


async def test_a_restart_while_the_bus_is_idle_is_noticed_by_the_next_read(
    bus: RedisStreamsBus, redis_server: PrivateRedis
) -> None:
    await bus.publish(STREAM, _message(1))
    [before] = await bus.read_group(STREAM, GROUP, "a", block_ms=200)
    await bus.ack(before, GROUP)

    redis_server.stop()
    redis_server.start()  # no call in between: the bus saw no error and still trusts its group

    await bus.publish(STREAM, _message(2))
    [after] = await bus.read_group(STREAM, GROUP, "a", block_ms=1_000)
    assert after.message.data == {"n": 2}
    assert bus.status == "ok"


async def test_a_stream_deleted_under_a_blocked_reader_is_recreated_on_the_next_read(
    bus: RedisStreamsBus, redis_server: PrivateRedis
) -> None:
    reader = asyncio.create_task(bus.read_group(STREAM, GROUP, "a", block_ms=3_000))
    await asyncio.sleep(0.2)
    with Redis(host="127.0.0.1", port=redis_server.port) as admin:
        admin.delete(STREAM)

    assert await asyncio.wait_for(reader, 5) == []
    await bus.publish(STREAM, _message(1))
    [delivery] = await bus.read_group(STREAM, GROUP, "a", block_ms=1_000)
    assert delivery.message.data == {"n": 1}
