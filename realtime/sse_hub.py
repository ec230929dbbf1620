"""Fan-out of price changes to server-sent-event clients.

Publishing: a frame goes out as soon as the cache changes (`notify`, called
on every tick), at most once per interval; a timer fallback also catches
changes nobody announced. Each frame is serialised *and SSE-encoded* once per
distinct symbol filter, and every client that kept up sends the very same
bytes: with 2,000 clients, per-client encoding was most of the server's CPU.

Coalescing: a client that fell behind (its socket was slow, so its generator
was not resumed) asks the cache for everything since *its* version. It skips
intermediate states, never builds a backlog, and never delays anyone else.

The HTTP part (sse-starlette, heartbeats) lives in `api/`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass, field

from realtime.background import BackgroundTask
from realtime.pacer import ChangePacer
from realtime.price_cache import PriceCache

logger = logging.getLogger(__name__)

SymbolFilter = frozenset[str] | None


def encode_event(event: str, event_id: int, data: str, retry_ms: int | None = None) -> bytes:
    """One SSE event on the wire. `data` is single-line JSON, so one `data:` line suffices."""
    retry = f"retry: {retry_ms}\r\n" if retry_ms is not None else ""
    return f"event: {event}\r\nid: {event_id}\r\n{retry}data: {data}\r\n\r\n".encode()


@dataclass
class _Frame:
    """The change from one published version to the next, encoded once per filter."""

    from_version: int
    to_version: int
    fragments: dict[str, str] = field(default_factory=dict)  # symbol -> PriceSnapshot JSON
    encoded: dict[SymbolFilter, bytes | None] = field(default_factory=dict)

    def bytes_for(self, wanted: SymbolFilter) -> bytes | None:
        """The `prices` event for this filter, or None if nothing it wants changed."""
        if wanted not in self.encoded:
            parts = [js for s, js in self.fragments.items() if wanted is None or s in wanted]
            self.encoded[wanted] = (
                encode_event("prices", self.to_version, "[" + ",".join(parts) + "]")
                if parts
                else None
            )
        return self.encoded[wanted]


class SSEHub:
    def __init__(self, cache: PriceCache, *, interval_s: float = 0.5, retry_ms: int = 3000) -> None:
        self._cache = cache
        self._retry = retry_ms
        self._pacer = ChangePacer(interval_s)
        self._published = asyncio.Event()  # replaced by a fresh one at every frame
        self._frame = _Frame(0, 0)
        self._task = BackgroundTask("sse-hub")
        self._closed = False
        self.clients = 0
        self.frames_published = 0

    @property
    def running(self) -> bool:
        return self._task.running

    async def next_frame(self) -> None:
        """Return once the next frame has gone to every client it woke, for work that must
        not delay one (the GC policy's full collection). Publishing wakes all of them at
        once, so their sends run in the loop's next iteration; a waiter woken among them
        would run mid-fan-out, so this one steps to the back of the queue first."""
        await self._published.wait()
        await asyncio.sleep(0)

    def notify(self) -> None:
        """The cache changed: publish soon. Cheap enough to call on every tick."""
        self._pacer.notify()

    async def start(self) -> None:
        self._frame = _Frame(self._cache.version, self._cache.version)
        self._task.start(self._publish_loop())

    async def stop(self) -> None:
        """Stop publishing and release every waiting client."""
        self._closed = True
        await self._task.stop()
        self._published.set()

    async def stream(self, symbols: Collection[str] | None = None) -> AsyncGenerator[bytes, None]:
        """SSE bytes: a `snapshot` event, then a `prices` event per change that concerns us."""
        wanted: SymbolFilter = None if symbols is None else frozenset(symbols)
        self.clients += 1
        try:
            version, snaps = self._cache.snapshot(wanted)
            data = "[" + ",".join(s.model_dump_json() for s in snaps) + "]"
            yield encode_event("snapshot", version, data, self._retry)
            while not self._closed:
                while self._frame.to_version <= version and not self._closed:
                    await self._published.wait()
                if self._closed:
                    return
                frame = self._frame
                if frame.from_version == version:
                    payload = frame.bytes_for(wanted)
                    version = frame.to_version
                else:  # fell behind (or joined mid-frame): catch up from our own version
                    version, changed = self._cache.changed_since(version, wanted)
                    parts = [s.model_dump_json() for s in changed]
                    payload = (
                        encode_event("prices", version, "[" + ",".join(parts) + "]")
                        if parts
                        else None
                    )
                if payload is not None:
                    yield payload
        finally:
            self.clients -= 1

    async def _publish_loop(self) -> None:
        while True:
            await self._pacer.wait()
            if self._cache.version != self._frame.to_version:
                self._publish()
                self._pacer.published()

    def _publish(self) -> None:
        start = self._frame.to_version
        current, changed = self._cache.changed_since(start)
        self._frame = _Frame(start, current, {s.symbol: s.model_dump_json() for s in changed})
        waiters, self._published = self._published, asyncio.Event()
        waiters.set()  # wakes every waiting client in one loop iteration
        self.frames_published += 1
