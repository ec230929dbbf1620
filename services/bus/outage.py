"""What a bus does when its server goes away: status, backoff, and closing.

A networked bus sends every server call through an `OutageGuard`: `call` for
writes and queries (an outage raises `BusUnavailableError`), `poll` for the
reads a consumer loop repeats (an outage backs off, capped and exponential,
and returns `[]`, so the loop keeps running and resumes by itself). The guard
keeps the bus's `status`: "ok" after any answered call, "degraded: <why>" after
a failed one, "degraded: closed" for good once closed; `close` also cuts short
the reads in flight. It knows nothing about streams or Redis commands.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from services.bus.protocol import BusUnavailableError

logger = logging.getLogger(__name__)

T = TypeVar("T")
CLOSED = "degraded: closed"


class OutageGuard:
    """Runs a bus's server calls; `outages` are the exceptions that mean "server unreachable"."""

    def __init__(
        self,
        server: str,
        *,
        outages: tuple[type[BaseException], ...],
        timeout_s: float,
        backoff_initial_s: float,
        backoff_max_s: float,
        on_outage: Callable[[], None],
    ) -> None:
        self._server = server
        self._outages = outages
        self._timeout_s = timeout_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._on_outage = on_outage  # e.g. forget state the server may have lost
        self._failures = 0  # consecutive failed polls, for the backoff
        self._status = "ok"
        self._closing = asyncio.Event()

    @property
    def status(self) -> str:
        return self._status

    @property
    def closed(self) -> bool:
        return self._closing.is_set()

    async def call(
        self, what: str, command: Callable[[], Awaitable[T]], *, timeout_s: float | None = None
    ) -> T:
        """Run `command` within `timeout_s`; an outage marks the bus degraded and raises."""
        if self.closed:
            raise BusUnavailableError(f"{what}: the {self._server} bus is closed")
        timeout_s = timeout_s or self._timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                result = await command()
        except self._outages as exc:
            if self.closed:  # the connection was closed under the call
                raise BusUnavailableError(f"{what}: the {self._server} bus is closed") from exc
            why = str(exc) or f"no answer within {timeout_s:g} s"
            reason = f"{what}: {type(exc).__name__}: {why}"
            if self._status == "ok":
                logger.warning("bus.degraded", extra={"server": self._server, "reason": reason})
            self._status = f"degraded: {reason}"
            self._on_outage()
            raise BusUnavailableError(f"{self._server} {reason}") from exc
        if self._status != "ok":
            logger.info("bus.recovered", extra={"server": self._server, "after": what})
        self._status = "ok"
        self._failures = 0
        return result

    async def poll(
        self, what: str, read: Callable[[], Awaitable[list[T]]], *, block_ms: int
    ) -> list[T]:
        """Run a read that may block `block_ms`; [] on an outage (after backoff) or on close."""
        if self.closed:  # wait like a timeout, so a loop on a closed bus does not spin
            await asyncio.sleep(max(block_ms, 0) / 1000)
            return []
        polling = asyncio.ensure_future(self._read_or_back_off(what, read, block_ms))
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({polling, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not polling.done():
                polling.cancel()
                await asyncio.wait({polling})  # a read cut off mid-reply drops its connection
        return [] if polling.cancelled() else polling.result()

    def close(self) -> None:
        """From now on every call is unavailable; reads in flight return [] at once."""
        self._status = CLOSED
        self._closing.set()

    async def _read_or_back_off(
        self, what: str, read: Callable[[], Awaitable[list[T]]], block_ms: int
    ) -> list[T]:
        try:
            return await self.call(what, read, timeout_s=self._timeout_s + max(block_ms, 0) / 1000)
        except BusUnavailableError:
            exponent = min(self._failures, 30)  # past the cap anyway; keeps the float finite
            self._failures += 1
            await asyncio.sleep(min(self._backoff_max_s, self._backoff_initial_s * 2**exponent))
            return []
