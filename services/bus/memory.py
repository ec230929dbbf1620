"""The in-process bus: the default when `REDIS_URL` is unset, with Redis Streams' semantics.

Owns, per stream: a bounded log of entries (oldest trimmed past `maxlen`),
consumer groups (last-delivered position, and per entry the consumer it is
pending at, when it was delivered and how often), and a wake-up event that
`publish` fires so blocked readers wait instead of polling.

Deliberately left out: durability (a process restart loses everything) and
sharing between processes — the realtime process and the flows share a bus
only through Redis. Everything runs on one event loop; no locks are needed
because no method awaits between reading and updating the state.

Entry ids are "<counter>-0" with a per-stream counter starting at 1, so they
order like Redis ids and "0" means "before the first entry".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from itertools import islice

from models.bus import BusMessage
from services.bus.protocol import BusUnavailableError, Delivery

logger = logging.getLogger(__name__)

DEFAULT_MAXLEN = 10_000


class InProcessBus:
    """A `Bus` in one process's memory; see the module docstring for what it keeps."""

    def __init__(self, *, maxlen: int = DEFAULT_MAXLEN) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._maxlen = maxlen
        self._streams: dict[str, _Stream] = {}
        self._closed = False

    async def publish(self, stream: str, message: BusMessage, *, maxlen: int | None = None) -> str:
        self._refuse_if_closed("publish")
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        log = self._stream(stream)
        log.entries.append(message)
        while len(log.entries) > (maxlen or self._maxlen):
            log.entries.popleft()
            log.first_seq += 1
        log.wake_readers()
        return _format_id(log.last_seq)

    async def latest_id(self, stream: str) -> str:
        self._refuse_if_closed("latest_id")
        return _format_id(self._stream(stream).last_seq)

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
    ) -> list[Delivery]:
        if self._closed:
            return await _nothing_after(block_ms)
        deadline = _deadline(block_ms)
        log = self._stream(stream)
        state = log.groups.setdefault(group, _Group())  # starts at "0": see Bus.read_group
        while not self._closed:
            fresh = log.after(state.last_seq, count)
            if fresh:
                now = time.monotonic()
                state.last_seq = fresh[-1][0]
                for seq, _ in fresh:
                    state.pending[seq] = _Pending(consumer, now, 1)
                return [Delivery(stream, _format_id(seq), message, 1) for seq, message in fresh]
            if not await log.wait_for_publish(deadline):
                break
        return []

    async def ack(self, delivery: Delivery, group: str) -> None:
        self._refuse_if_closed("ack")
        log = self._streams.get(delivery.stream)
        state = log.groups.get(group) if log else None
        if state is not None:
            state.pending.pop(_parse_id(delivery.id), None)

    async def claim_stale(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
    ) -> list[Delivery]:
        await asyncio.sleep(0)  # yield as a network call would, so a polling loop cannot hog
        log = self._streams.get(stream)
        state = log.groups.get(group) if log else None
        if self._closed or log is None or state is None:
            return []
        now = time.monotonic()
        claimed: list[Delivery] = []
        for seq in sorted(state.pending):
            if len(claimed) >= count:
                break
            pending = state.pending[seq]
            if (now - pending.delivered_at) * 1000 < min_idle_ms:
                continue
            message = log.get(seq)
            if message is None:  # trimmed while pending: nothing left to deliver
                del state.pending[seq]
                logger.info("bus.pending_trimmed", extra={"stream": stream, "group": group})
                continue
            pending.consumer, pending.delivered_at = consumer, now
            pending.deliveries += 1
            claimed.append(Delivery(stream, _format_id(seq), message, pending.deliveries))
        return claimed

    async def pending_count(self, stream: str, group: str) -> int:
        self._refuse_if_closed("pending_count")
        log = self._streams.get(stream)
        state = log.groups.get(group) if log else None
        return len(state.pending) if state else 0

    async def tail(
        self,
        stream: str,
        *,
        last_id: str = "$",
        block_ms: int = 1000,
        count: int = 100,
    ) -> list[Delivery]:
        if self._closed:
            return await _nothing_after(block_ms)
        deadline = _deadline(block_ms)
        log = self._stream(stream)
        after = log.last_seq if last_id == "$" else _parse_id(last_id)
        while not self._closed:
            fresh = log.after(after, count)
            if fresh:
                return [Delivery(stream, _format_id(seq), message, 1) for seq, message in fresh]
            if not await log.wait_for_publish(deadline):
                break
        return []

    async def healthy(self) -> bool:
        return not self._closed

    @property
    def status(self) -> str:
        return "degraded: closed" if self._closed else "ok"

    async def close(self) -> None:
        self._closed = True
        for log in self._streams.values():
            log.wake_readers()

    def _stream(self, name: str) -> _Stream:
        log = self._streams.get(name)
        if log is None:
            log = self._streams[name] = _Stream()
        return log

    def _refuse_if_closed(self, what: str) -> None:
        if self._closed:
            raise BusUnavailableError(f"{what}: the in-process bus is closed")


@dataclass(slots=True)
class _Pending:
    consumer: str
    delivered_at: float  # time.monotonic() of the latest delivery
    deliveries: int


@dataclass(slots=True)
class _Group:
    last_seq: int = 0  # newest entry handed to any consumer of the group
    pending: dict[int, _Pending] = field(default_factory=dict)


@dataclass(slots=True)
class _Stream:
    """Entries are contiguous: `entries[i]` has sequence number `first_seq + i`."""

    entries: deque[BusMessage] = field(default_factory=deque)
    first_seq: int = 1
    groups: dict[str, _Group] = field(default_factory=dict)
    published: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def last_seq(self) -> int:
        return self.first_seq + len(self.entries) - 1

    def get(self, seq: int) -> BusMessage | None:
        index = seq - self.first_seq
        return self.entries[index] if 0 <= index < len(self.entries) else None

    def after(self, seq: int, count: int) -> list[tuple[int, BusMessage]]:
        start = max(seq + 1, self.first_seq)
        window = islice(self.entries, start - self.first_seq, start - self.first_seq + count)
        return list(enumerate(window, start=start))

    def wake_readers(self) -> None:
        """Wake every reader waiting now; later readers wait on a fresh event."""
        self.published.set()
        self.published = asyncio.Event()

    async def wait_for_publish(self, deadline: float) -> bool:
        """Wait until the next publish or `deadline` (loop time); False on timeout."""
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            await asyncio.sleep(0)  # a block_ms=0 polling loop must still let others run
            return False
        try:
            async with asyncio.timeout(remaining):
                await self.published.wait()
        except TimeoutError:
            return False
        return True


async def _nothing_after(block_ms: int) -> list[Delivery]:
    """A read on a closed bus: wait like a timeout, so a consumer loop does not spin."""
    await asyncio.sleep(max(block_ms, 0) / 1000)
    return []


def _deadline(block_ms: int) -> float:
    return asyncio.get_running_loop().time() + max(block_ms, 0) / 1000


def _format_id(seq: int) -> str:
    return f"{seq}-0"


def _parse_id(entry_id: str) -> int:
    """The counter part of "<n>-<m>" or "<n>": entries are "<n>-0", so after n-m is after n."""
    head, _, tail = entry_id.partition("-")
    if not head.isdigit() or not (tail or "0").isdigit():
        raise ValueError(f"not a stream entry id: {entry_id!r}")
    return int(head)
