"""The contract every Level-2 book feed keeps, so a venue feed can replace the simulator.

A feed owns its background task: `start` returns once it is running, and
messages flow to `on_book` from the event loop's thread; `stop` returns once
nothing of the feed is left running. Per (symbol, venue) a feed sends a
`BookSnapshot` first and then `BookDelta`s whose `seq` follows on by one.
`request_snapshot` is how a consumer that saw a gap gets back in sync: the
feed sends a fresh snapshot of that book soon (the next step, for the
simulator); asking twice before it comes is harmless.

`on_book` must be fast and must not raise; a feed never blocks the loop for
longer than one step of its own work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from realtime.order_book import BookDelta, BookSnapshot

BookMessage = BookSnapshot | BookDelta
BookHandler = Callable[[BookMessage], object]
"""Called with each message; what it returns (`BookService.apply` says if it applied) is ignored."""


class BookFeed(Protocol):
    name: str

    @property
    def running(self) -> bool: ...

    async def start(self, on_book: BookHandler) -> None: ...

    async def stop(self) -> None: ...

    def request_snapshot(self, symbol: str, venue: str) -> None: ...
