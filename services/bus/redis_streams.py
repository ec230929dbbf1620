"""The Redis Streams bus: what both processes share in production (`REDIS_URL`).

A message is one entry with one field, `m` = `BusMessage.model_dump_json()`;
`XADD MAXLEN ~ maxlen` caps each stream (approximate: Redis trims whole nodes).
Groups, pending entries and reclaiming are Redis's own (XREADGROUP, XACK, XAUTOCLAIM).

Outages: every command goes through one `OutageGuard` (`services.bus.outage`),
which turns a connection error or timeout into `BusUnavailableError` and marks
the bus degraded. `publish`, `ack` and `pending_count` raise it; the polled
reads (`read_group`, `claim_stale`, `tail`) back off and return `[]`, so a
consumer loop keeps running and resumes by itself. The redis client itself
retries only once, on a stale connection (see `_client`).

Durability is Redis's: dev and CI run it with `--save ""` and no AOF, so a
restart loses streams, groups and pending entries (groups are re-created on the
next read). We guarantee less and test it: an entry of a consumer that died
unacked is reclaimed by another while Redis lives, and publishing and consuming
resume after a Redis restart without restarting our process.

Plain commands use a client with a short `socket_timeout`, so a hung server
fails fast; blocking reads would trip it, so they use a second client without
one, bounded by `asyncio.timeout(block + command timeout)` instead.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from models.bus import BusMessage
from services.bus.outage import OutageGuard
from services.bus.protocol import BusUnavailableError, Delivery

logger = logging.getLogger(__name__)

FIELD = "m"
_Decoded = list[tuple[str, BusMessage | None]]  # entry id, message (None: unreadable)
_OUTAGES = (RedisConnectionError, RedisTimeoutError, OSError)  # OSError covers TimeoutError


class RedisStreamsBus:
    """A `Bus` on Redis Streams; see the module docstring for outages and durability."""

    def __init__(
        self,
        url: str,
        *,
        maxlen: int = 10_000,
        connect_timeout_s: float = 1.0,
        command_timeout_s: float = 2.0,
        health_timeout_s: float = 0.5,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 5.0,
    ) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        self._maxlen = maxlen
        self._health_timeout_s = health_timeout_s
        self._commands = _client(url, connect_timeout_s, socket_timeout_s=command_timeout_s)
        self._blocking = _client(url, connect_timeout_s, socket_timeout_s=None)
        self._groups_ready: set[tuple[str, str]] = set()  # cleared on outages: Redis may lose them
        self._guard = OutageGuard(
            "Redis",
            outages=_OUTAGES,
            timeout_s=command_timeout_s,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            on_outage=self._groups_ready.clear,
        )

    async def publish(self, stream: str, message: BusMessage, *, maxlen: int | None = None) -> str:
        if maxlen is not None and maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, not {maxlen}")
        fields: dict[Any, Any] = {FIELD: message.model_dump_json()}
        bound, approximate = (self._maxlen, True) if maxlen is None else (maxlen, False)
        entry_id = await self._guard.call(
            "publish",
            lambda: self._commands.xadd(stream, fields, maxlen=bound, approximate=approximate),
        )
        return str(entry_id)  # decode_responses=True: always str already

    async def read_group(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int = 1000,
    ) -> list[Delivery]:
        return await self._guard.poll(
            "read_group",
            lambda: self._read_group(stream, group, consumer, count, block_ms),
            block_ms=block_ms,
        )

    async def ack(self, delivery: Delivery, group: str) -> None:
        await self._guard.call(
            "ack", lambda: self._commands.xack(delivery.stream, group, delivery.id)
        )

    async def claim_stale(
        self,
        stream: str,
        group: str,
        consumer: str,
        *,
        min_idle_ms: int,
        count: int = 100,
    ) -> list[Delivery]:
        return await self._guard.poll(
            "claim_stale",
            lambda: self._claim_stale(stream, group, consumer, min_idle_ms, count),
            block_ms=0,
        )

    async def pending_count(self, stream: str, group: str) -> int:
        async def count_pending() -> int:
            try:
                summary = await self._commands.xpending(stream, group)
            except ResponseError as exc:
                if _is_nogroup(exc):
                    return 0
                raise
            return int(summary["pending"])

        return await self._guard.call("pending_count", count_pending)

    async def latest_id(self, stream: str) -> str:
        async def last_generated() -> str:
            try:
                info = await self._commands.xinfo_stream(stream)
            except ResponseError as exc:
                if "no such key" in str(exc).lower():
                    return "0-0"
                raise
            value = info["last-generated-id"]
            return value.decode() if isinstance(value, bytes) else str(value)

        return await self._guard.call("latest_id", last_generated)

    async def tail(
        self,
        stream: str,
        *,
        last_id: str = "$",
        block_ms: int = 1000,
        count: int = 100,
    ) -> list[Delivery]:
        async def read() -> list[Delivery]:
            reply = await self._blocking.xread(
                {stream: last_id}, count=count, block=_block(block_ms)
            )
            return [
                Delivery(stream, entry_id, message, 1)
                for entry_id, message in self._decode(stream, _entries(reply))
                if message is not None
            ]

        return await self._guard.poll("tail", read, block_ms=block_ms)

    async def healthy(self) -> bool:
        try:
            await self._guard.call("ping", self._commands.ping, timeout_s=self._health_timeout_s)
        except (BusUnavailableError, RedisError):
            return False
        return True

    @property
    def status(self) -> str:
        return self._guard.status

    async def close(self) -> None:
        if self._guard.closed:
            return
        self._guard.close()  # first: wakes the blocked reads, before their connections go
        await self._commands.aclose()
        await self._blocking.aclose()

    # --- commands behind the polled reads ----------------------------------------

    async def _read_group(
        self, stream: str, group: str, consumer: str, count: int, block_ms: int
    ) -> list[Delivery]:
        async def read() -> Any:
            await self._ensure_group(stream, group)
            return await self._blocking.xreadgroup(
                group, consumer, {stream: ">"}, count=count, block=_block(block_ms)
            )

        try:
            reply = await read()
        except ResponseError as exc:  # the group vanished: key deleted, or Redis restarted empty
            if not _is_nogroup(exc) and not str(exc).startswith("UNBLOCKED"):
                raise
            self._groups_ready.discard((stream, group))
            if not _is_nogroup(exc):
                return []  # deleted while blocked: the block time is spent, re-create next read
            reply = await read()
        decoded = self._decode(stream, _entries(reply))
        await self._ack_unreadable(stream, group, decoded)
        return [Delivery(stream, i, message, 1) for i, message in decoded if message is not None]

    async def _claim_stale(
        self, stream: str, group: str, consumer: str, min_idle_ms: int, count: int
    ) -> list[Delivery]:
        claimed: _Decoded = []
        cursor = "0-0"
        while len(claimed) < count:
            try:
                wanted = count - len(claimed)
                reply = await self._commands.xautoclaim(
                    stream, group, consumer, min_idle_ms, start_id=cursor, count=wanted
                )
            except ResponseError as exc:
                if _is_nogroup(exc):
                    return []
                raise
            # [cursor, entries, deleted ids]; Redis already dropped the deleted ones from the PEL.
            cursor, entries = reply[0], [e for e in reply[1] if e[0] is not None]
            if len(reply) > 2 and reply[2]:
                logger.info("bus.pending_trimmed", extra={"stream": stream, "count": len(reply[2])})
            claimed += self._decode(stream, entries)
            if cursor == "0-0":
                break
        await self._ack_unreadable(stream, group, claimed)
        counts = await self._delivery_counts(stream, group, consumer, [i for i, m in claimed if m])
        return [
            Delivery(stream, i, message, counts[i])
            for i, message in claimed
            if message is not None and i in counts  # not in counts: acked or taken meanwhile
        ]

    async def _delivery_counts(
        self, stream: str, group: str, consumer: str, ids: list[str]
    ) -> dict[str, int]:
        """XAUTOCLAIM does not report delivery counts; XPENDING per entry does."""
        if not ids:
            return {}
        async with self._commands.pipeline(transaction=False) as pipe:
            for entry_id in ids:
                pipe.xpending_range(stream, group, entry_id, entry_id, 1, consumername=consumer)
            replies = await pipe.execute()
        return {r[0]["message_id"]: int(r[0]["times_delivered"]) for r in replies if r}

    async def _ensure_group(self, stream: str, group: str) -> None:
        if (stream, group) in self._groups_ready:
            return
        try:
            await self._commands.xgroup_create(stream, group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups_ready.add((stream, group))

    def _decode(self, stream: str, entries: list[tuple[str, dict[str, str]]]) -> _Decoded:
        """Entries as messages; None where an entry is not a BusMessage (logged once, here)."""
        decoded: _Decoded = []
        for entry_id, fields in entries:
            try:
                decoded.append((entry_id, BusMessage.model_validate_json(fields[FIELD])))
            except (KeyError, TypeError, ValidationError) as exc:
                logger.error(
                    "bus.unreadable_entry",
                    extra={"stream": stream, "entry_id": entry_id, "error": str(exc)[:200]},
                )
                decoded.append((entry_id, None))
        return decoded

    async def _ack_unreadable(self, stream: str, group: str, decoded: _Decoded) -> None:
        """An entry no consumer can parse would sit in the pending list forever: ack it."""
        unreadable = [entry_id for entry_id, message in decoded if message is None]
        if unreadable:
            await self._commands.xack(stream, group, *unreadable)


def _client(url: str, connect_timeout_s: float, *, socket_timeout_s: float | None) -> Redis:
    return Redis.from_url(
        url,
        decode_responses=True,
        protocol=2,  # the reply shapes parsed here are RESP2's
        socket_connect_timeout=connect_timeout_s,
        socket_timeout=socket_timeout_s,
        # One immediate retry on a connection error, none on timeouts: the pool hands out
        # connections whose server went away while they idled (a restart, an idle timeout),
        # and the first command on one fails although Redis is up. Outages proper are
        # handled by the OutageGuard. A command cut off mid-reply may run twice: the bus is
        # at-least-once anyway.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )


def _block(block_ms: int) -> int | None:
    """Redis reads BLOCK 0 as "forever"; our 0 means "do not wait"."""
    return block_ms if block_ms > 0 else None


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """Entries of the one stream in an XREAD/XREADGROUP reply ([] on timeout)."""
    return list(reply[0][1]) if reply else []


def _is_nogroup(exc: ResponseError) -> bool:
    return str(exc).startswith("NOGROUP")
