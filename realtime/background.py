"""One named asyncio task owned by a component: started once, stopped and awaited.

Components of the realtime process (hubs, aggregator, poller) each run a loop
in the background; this is the lifecycle they share, so "stop leaves nothing
running" is written once. A failure inside the loop ends the task; the owner's
`running` then says False (loops that must survive errors catch them inside).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any


class BackgroundTask:
    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, loop_body: Coroutine[Any, Any, None]) -> None:
        if self._task is not None:
            loop_body.close()
            raise RuntimeError(f"{self.name} already started")
        self._task = asyncio.create_task(loop_body, name=self.name)

    async def stop(self) -> None:
        """Cancel and wait for the task; safe to call twice or before start."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
