"""The event bus contract every implementation keeps, and the errors it raises.

Delivery is at-least-once: an entry read through a consumer group stays
pending until it is acked; if its consumer dies first, another consumer takes
it over with `claim_stale` and sees `deliveries > 1`. Consumers must therefore
be idempotent (bus messages carry ids such as `client_order_id` for that).
Order is per stream; there is no order across streams.

What the contract leaves out: durability across a restart of the backing
store (Redis keeps the streams only if it persists them), exactly-once
processing, and any dead-letter handling of messages that keep failing.

* AITraderError
  x BusError
    x BusUnavailableError   the backing store cannot be reached (or the bus is closed)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models.bus import BusMessage
from models.errors import AITraderError


class BusError(AITraderError):
    """Base of every error the event bus raises."""


class BusUnavailableError(BusError):
    """The bus cannot take the call now: its server is unreachable, or the bus was closed.

    Raised by calls whose failure the caller must know about (`publish`,
    `ack`, `pending_count`). Polled reads return `[]` instead and report the
    outage through `Bus.status`.
    """


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a reader."""

    stream: str
    id: str  # entry id: "1700000000000-0" on Redis, "<counter>-0" in-process; pass it back as is
    message: BusMessage
    deliveries: int  # 1 on first delivery, >1 once reclaimed from a dead consumer


class Bus(Protocol):
    """Streams of `BusMessage`s with consumer groups, shared by both processes.

    Consumer groups give work-queue semantics: each entry goes to one consumer
    of a group, every group sees every entry. `tail` gives fan-out without a
    group for live feeds. Streams are trimmed to a bounded length, so a reader
    that falls further behind than that loses the oldest entries.

    Outages: `publish`, `ack` and `pending_count` raise `BusUnavailableError`;
    `read_group`, `claim_stale` and `tail` return `[]` (after a backoff pause
    on Redis) so a consumer loop keeps running and resumes by itself.
    `status` says which state the bus is in.
    """

    async def publish(self, stream: str, message: BusMessage, *, maxlen: int | None = None) -> str:
        """Append `message` to `stream` and return its entry id.

        `maxlen` keeps exactly that many entries of this stream (the bus's own bound,
        approximate on Redis, otherwise): for streams of large messages of which only the
        newest few matter, such as the market-data snapshots.
        """
        ...

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
    ) -> list[Delivery]:
        """Entries of `stream` not yet delivered to `group`, now pending at `consumer`.

        The group is created on first use starting at the beginning of the
        stream ("0"), so nothing published before the first read is lost; a
        brand-new group therefore first receives what the stream still holds.
        Waits up to `block_ms` for an entry (0: do not wait) and returns `[]`
        on timeout.
        """
        ...

    async def ack(self, delivery: Delivery, group: str) -> None:
        """Mark `delivery` processed by `group`; acking twice or after a trim is a no-op."""
        ...

    async def claim_stale(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
    ) -> list[Delivery]:
        """Take over entries pending longer than `min_idle_ms` at any consumer of `group`.

        Meant for entries of a consumer that died without acking; the caller's
        own stale entries are claimed too, which is what a restarted consumer
        with the same name needs. Entries trimmed from the stream meanwhile are
        dropped from the pending list and not returned.
        """
        ...

    async def pending_count(self, stream: str, group: str) -> int:
        """Entries delivered to `group` and not acked yet; 0 for an unknown group."""
        ...

    async def latest_id(self, stream: str) -> str:
        """Id of the newest entry ever added to `stream` ("0-0" if none): where a tail starts.

        Start a fan-out reader at `latest_id()` rather than "$", so nothing
        published between its first two reads is missed. Raises
        `BusUnavailableError` on an outage.
        """
        ...

    async def tail(
        self,
        stream: str,
        *,
        last_id: str = "$",
        block_ms: int = 1000,
        count: int = 100,
    ) -> list[Delivery]:
        """Entries after `last_id` ("$": after the newest one now), for every reader.

        Pass the id of the last delivery back as `last_id` on the next call:
        calling with "$" again misses what was published in between.
        """
        ...

    async def healthy(self) -> bool:
        """Probe the backing store now; never raises. Updates `status`."""
        ...

    @property
    def status(self) -> str:
        """`ok` or `degraded: <reason>` as of the last call (or probe); for /health/redis."""
        ...

    async def close(self) -> None:
        """Release connections; blocked reads return [] at once. Idempotent.

        Afterwards `publish`, `ack` and `pending_count` raise `BusUnavailableError`,
        and reads wait `block_ms` and return [] (a loop that missed the shutdown
        does not spin).
        """
        ...
