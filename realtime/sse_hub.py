"""Fan-out of price changes to server-sent-event clients.

Once per interval the hub asks the PriceCache what changed, serialises each
changed symbol once, and wakes every client. A client that kept up takes the
shared fragments (filtered by its symbols); a client that fell behind (its
socket was slow, so its generator was not resumed) asks the cache for
everything since *its* version: it skips the intermediate states and never
builds a backlog, and it never delays anyone else.

The hub yields plain event dicts (`event`, `id`, `data`, `retry`); the HTTP
part (sse-starlette, heartbeats) lives in `api/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass, field
from functools import partial

from realtime.price_cache import PriceCache

logger = logging.getLogger(__name__)

Event = dict[str, str | int]


@dataclass(frozen=True)
class _Frame:
    """The change from one published version to the next, serialised once."""

    from_version: int
    to_version: int
    fragments: dict[str, str] = field(default_factory=dict)  # symbol -> PriceSnapshot JSON


class SSEHub:
    def __init__(self, cache: PriceCache, *, interval_s: float = 0.5, retry_ms: int = 3000) -> None:
        self._cache = cache
        self._interval = interval_s
        self._retry = retry_ms
        self._cond = asyncio.Condition()
        self._frame = _Frame(0, 0)
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.clients = 0
        self.frames_published = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("SSEHub already started")
        self._frame = _Frame(self._cache.version, self._cache.version)
        self._task = asyncio.create_task(self._publish_loop(), name="sse-hub")

    async def stop(self) -> None:
        """Stop publishing and release every waiting client."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        async with self._cond:
            self._cond.notify_all()

    async def stream(self, symbols: Collection[str] | None = None) -> AsyncGenerator[Event, None]:
        """A snapshot event, then a `prices` event per published change that concerns us."""
        wanted = None if symbols is None else frozenset(symbols)
        self.clients += 1
        try:
            version, snaps = self._cache.snapshot(wanted)
            data = "[" + ",".join(s.model_dump_json() for s in snaps) + "]"
            yield {"event": "snapshot", "id": str(version), "data": data, "retry": self._retry}
            while not self._closed:
                async with self._cond:
                    await self._cond.wait_for(partial(self._has_news, version))
                if self._closed:
                    return
                frame = self._frame
                if frame.from_version == version:
                    parts = [
                        js for sym, js in frame.fragments.items() if wanted is None or sym in wanted
                    ]
                    version = frame.to_version
                else:  # fell behind (or joined mid-frame): catch up from our own version
                    version, changed = self._cache.changed_since(version, wanted)
                    parts = [s.model_dump_json() for s in changed]
                if parts:
                    yield {
                        "event": "prices",
                        "id": str(version),
                        "data": "[" + ",".join(parts) + "]",
                    }
        finally:
            self.clients -= 1

    def _has_news(self, seen: int) -> bool:
        return self._closed or self._frame.to_version > seen

    async def _publish_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self._interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            last = self._frame.to_version
            if self._cache.version == last:
                continue
            current, changed = self._cache.changed_since(last)
            frame = _Frame(last, current, {s.symbol: s.model_dump_json() for s in changed})
            async with self._cond:
                self._frame = frame
                self._cond.notify_all()
            self.frames_published += 1
