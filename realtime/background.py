"""One named asyncio task owned by a component: started once, stopped and awaited.

Components of the realtime process (hubs, aggregator, poller) each run a loop
in the background; this is the lifecycle they share, so "stop leaves nothing
running" is written once. A failure inside the loop ends the task; the owner's
`running` then says False (loops that must survive errors catch them inside).
"""

from __future__ import annotations

import asyncio
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
        """Run `loop_body`; refused while a previous run is still going (a finished one is not)."""
        if self.running:
            loop_body.close()
            raise RuntimeError(f"{self.name} is already running; stop it first")
        self._task = asyncio.create_task(loop_body, name=self.name)

    async def stop(self) -> None:
        """Cancel and wait for the task; safe to call twice or before start.

        A task that had already failed re-raises its error here, so the owner
        learns of it. Our own cancellation of the task is swallowed, but if
        `stop()` itself is being cancelled, that cancellation propagates.
        """
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
