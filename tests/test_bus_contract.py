"""The Bus contract, run against InProcessBus and RedisStreamsBus alike.

The Redis variant uses the shared server on 127.0.0.1:6379; every test works
on streams under a unique prefix and deletes them afterwards. When Redis is
unreachable those tests are skipped with the reason, except under CI=true,
where the run fails. Async tests run on anyio's pytest plugin (asyncio backend).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from models.bus import BusMessage
from services.bus import Bus, BusUnavailableError, InProcessBus, RedisStreamsBus
from tests.conftest import IN_CI

REDIS_URL = "redis://127.0.0.1:6379/0"
# Approximate MAXLEN trims whole radix-tree nodes (stream-node-max-entries, 100 by default).
REDIS_TRIM_SLACK = 100

pytestmark = pytest.mark.anyio

BusFactory = Callable[..., Bus]


@pytest.fixture
def stream() -> str:
    """A stream name no other test run uses (the Redis server is shared)."""
    return f"test:bus:{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def make_test_bus(request: pytest.FixtureRequest, stream: str) -> AsyncIterator[BusFactory]:
    """Builds buses of one kind (`maxlen=` to override); closes them and deletes the streams."""
    made: list[Bus] = []
    admin = await _redis_admin() if request.param == "redis" else None

    def make(*, maxlen: int = 10_000) -> Bus:
        bus: Bus = (
            RedisStreamsBus(REDIS_URL, maxlen=maxlen)
            if request.param == "redis"
            else InProcessBus(maxlen=maxlen)
        )
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.close()
    if admin is not None:
        keys = [key async for key in admin.scan_iter(match=f"{stream}*")]
        if keys:
            await admin.delete(*keys)
        await admin.aclose()


@pytest.fixture
def bus(make_test_bus: BusFactory) -> Bus:
    return make_test_bus()


def _message(n: int, **data: object) -> BusMessage:
    return BusMessage(type="signal", data={"n": n, **data})


async def _publish(bus: Bus, stream: str, count: int) -> list[str]:
    return [await bus.publish(stream, _message(n)) for n in range(count)]


async def test_a_published_message_comes_back_unchanged_through_a_group(
    bus: Bus, stream: str
) -> None:
    sent = BusMessage(
        type="order.filled", data={"symbol": "AAPL", "qty": "10", "legs": [{"px": "187.25"}]}
    )
    entry_id = await bus.publish(stream, sent)

    [delivery] = await bus.read_group(stream, "oms", "worker-1", block_ms=100)

    assert delivery.message == sent
    assert delivery.message.ts == sent.ts
    assert (delivery.stream, delivery.id, delivery.deliveries) == (stream, entry_id, 1)


async def test_entry_ids_increase_with_every_publish(bus: Bus, stream: str) -> None:
    ids = await _publish(bus, stream, 5)

    keys = [tuple(int(part) for part in entry_id.split("-")) for entry_id in ids]
    assert keys == sorted(keys)
    assert len(set(ids)) == 5


async def test_consumers_of_one_group_split_the_messages(bus: Bus, stream: str) -> None:
    await _publish(bus, stream, 10)

    first = await bus.read_group(stream, "oms", "a", count=4, block_ms=100)
    second = await bus.read_group(stream, "oms", "b", count=100, block_ms=100)
    again = await bus.read_group(stream, "oms", "a", block_ms=50)

    assert len(first) == 4
    assert len(second) == 6
    assert again == []
    assert sorted(d.message.data["n"] for d in first + second) == list(range(10))


async def test_every_group_sees_every_message(bus: Bus, stream: str) -> None:
    await _publish(bus, stream, 3)

    oms = await bus.read_group(stream, "oms", "a", block_ms=100)
    audit = await bus.read_group(stream, "audit", "a", block_ms=100)

    assert [d.message for d in oms] == [d.message for d in audit]
    assert len(oms) == 3


async def test_a_group_created_late_still_gets_what_was_published_before(
    bus: Bus, stream: str
) -> None:
    await _publish(bus, stream, 2)

    late = await bus.read_group(stream, "late-group", "a", block_ms=100)

    assert [d.message.data["n"] for d in late] == [0, 1]


async def test_ack_removes_the_entry_from_pending(bus: Bus, stream: str) -> None:
    await _publish(bus, stream, 3)
    deliveries = await bus.read_group(stream, "oms", "a", block_ms=100)
    assert await bus.pending_count(stream, "oms") == 3

    await bus.ack(deliveries[0], "oms")
    await bus.ack(deliveries[1], "oms")
    await bus.ack(deliveries[1], "oms")  # twice: no-op

    assert await bus.pending_count(stream, "oms") == 1


async def test_an_unknown_group_has_nothing_pending_or_to_claim(bus: Bus, stream: str) -> None:
    assert await bus.pending_count(stream, "nobody") == 0
    assert await bus.claim_stale(stream, "nobody", "a", min_idle_ms=0) == []


async def test_entries_of_a_consumer_that_died_are_reclaimed_by_another(
    bus: Bus, stream: str
) -> None:
    await _publish(bus, stream, 3)
    taken = await bus.read_group(stream, "oms", "dies", block_ms=100)  # ... and never acks
    assert await bus.read_group(stream, "oms", "survivor", block_ms=50) == []
    assert await bus.claim_stale(stream, "oms", "survivor", min_idle_ms=60_000) == []

    await asyncio.sleep(0.15)
    reclaimed = await bus.claim_stale(stream, "oms", "survivor", min_idle_ms=100)

    assert [d.message for d in reclaimed] == [d.message for d in taken]
    assert [d.id for d in reclaimed] == [d.id for d in taken]
    assert {d.deliveries for d in reclaimed} == {2}
    for delivery in reclaimed:
        await bus.ack(delivery, "oms")
    assert await bus.pending_count(stream, "oms") == 0
    assert await bus.claim_stale(stream, "oms", "survivor", min_idle_ms=0) == []


async def test_claim_stale_takes_no_more_than_count(bus: Bus, stream: str) -> None:
    await _publish(bus, stream, 5)
    await bus.read_group(stream, "oms", "dies", block_ms=100)

    first = await bus.claim_stale(stream, "oms", "survivor", min_idle_ms=0, count=2)
    everything = await bus.claim_stale(stream, "oms", "other", min_idle_ms=0, count=10)

    assert [d.message.data["n"] for d in first] == [0, 1]
    assert [d.message.data["n"] for d in everything] == [0, 1, 2, 3, 4]
    assert [d.deliveries for d in everything] == [3, 3, 2, 2, 2]


async def test_tail_sees_messages_published_after_it_started(bus: Bus, stream: str) -> None:
    await bus.publish(stream, _message(-1))  # before the tail: must not be seen
    reader = asyncio.create_task(bus.tail(stream, block_ms=3_000))

    n = 0
    while not reader.done() and n < 60:  # keep publishing until the blocked read is in place
        await asyncio.sleep(0.05)
        await bus.publish(stream, _message(n))
        n += 1
    seen = await reader

    assert seen
    assert all(d.message.data["n"] >= 0 for d in seen)


async def test_tail_from_an_id_gives_every_reader_what_followed_it(bus: Bus, stream: str) -> None:
    ids = await _publish(bus, stream, 3)

    one = await bus.tail(stream, last_id=ids[0], block_ms=0)
    other = await bus.tail(stream, last_id=ids[0], block_ms=0)
    everything = await bus.tail(stream, last_id="0", block_ms=0)

    assert [d.id for d in one] == ids[1:] == [d.id for d in other]
    assert [d.id for d in everything] == ids
    assert await bus.tail(stream, last_id=ids[-1], block_ms=0) == []


async def test_a_tail_started_at_latest_id_misses_nothing_published_between_reads(
    bus: Bus, stream: str
) -> None:
    assert await bus.latest_id(stream) == "0-0"  # a stream nobody wrote to
    await bus.publish(stream, _message(-1))  # history: not for a reader starting now
    position = await bus.latest_id(stream)
    ids = await _publish(bus, stream, 3)  # published while "no read is in flight"
    assert await bus.latest_id(stream) == ids[-1]

    seen = await bus.tail(stream, last_id=position, block_ms=0)

    assert [d.id for d in seen] == ids


async def test_trimming_keeps_the_stream_near_maxlen(
    make_test_bus: BusFactory, stream: str
) -> None:
    bus = make_test_bus(maxlen=50)
    ids = await _publish(bus, stream, 400)

    retained = await bus.tail(stream, last_id="0", block_ms=0, count=10_000)

    slack = REDIS_TRIM_SLACK if isinstance(bus, RedisStreamsBus) else 0
    assert 50 <= len(retained) <= 50 + slack
    assert [d.id for d in retained] == ids[-len(retained) :]  # the newest survive


async def test_read_group_with_nothing_to_read_returns_empty_after_block_ms(
    bus: Bus, stream: str
) -> None:
    started = time.monotonic()
    assert await bus.read_group(stream, "oms", "a", block_ms=300) == []
    waited = time.monotonic() - started

    started = time.monotonic()
    assert await bus.read_group(stream, "oms", "a", block_ms=0) == []
    not_waited = time.monotonic() - started

    assert 0.25 <= waited < 1.5
    assert not_waited < 0.2


async def test_a_blocked_reader_wakes_as_soon_as_a_message_arrives(bus: Bus, stream: str) -> None:
    reader = asyncio.create_task(bus.read_group(stream, "oms", "a", block_ms=10_000))
    await asyncio.sleep(0.1)
    started = time.monotonic()

    await bus.publish(stream, _message(1))
    [delivery] = await asyncio.wait_for(reader, 5)

    assert delivery.message.data["n"] == 1
    assert time.monotonic() - started < 1.0


async def test_a_live_bus_is_healthy(bus: Bus, stream: str) -> None:
    await bus.publish(stream, _message(1))

    assert await bus.healthy()
    assert bus.status == "ok"


async def test_a_closed_bus_refuses_to_publish_and_says_so(bus: Bus, stream: str) -> None:
    await bus.close()

    with pytest.raises(BusUnavailableError):
        await bus.publish(stream, _message(1))
    assert not await bus.healthy()
    assert bus.status.startswith("degraded")


async def test_a_reader_blocked_when_the_bus_closes_returns_empty_promptly(
    bus: Bus, stream: str
) -> None:
    reader = asyncio.create_task(bus.read_group(stream, "oms", "a", block_ms=10_000))
    await asyncio.sleep(0.1)

    await bus.close()

    assert await asyncio.wait_for(reader, 3) == []
    assert bus.status == "degraded: closed"


async def _redis_admin() -> Redis:
    """A plain client for cleanup; skips (or fails under CI) when Redis is unreachable."""
    admin = Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=2)
    try:
        await admin.ping()
    except (RedisError, OSError) as exc:
        await admin.aclose()
        _service_missing(f"Redis at {REDIS_URL}", str(exc))
    return admin


def _service_missing(what: str, reason: str) -> None:
    message = f"{what} unreachable: {reason}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required, not optional)", pytrace=False)
    pytest.skip(message)
