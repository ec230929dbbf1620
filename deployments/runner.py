"""Prefect's `Runner`, stopped by SIGTERM the way Ctrl-C stops it.

Prefect's own SIGTERM handler calls the sync `Runner.stop()` from inside the
running event loop, where the call only creates the `astop()` coroutine and
drops it ("coroutine 'Runner.astop' was never awaited"), then exits through
`sys.exit`. `aitrader up` (after its SIGINT grace), `docker stop` and
systemd all stop with SIGTERM, so that warning ended every such shutdown.

Here SIGTERM takes the SIGINT path instead: asyncio's SIGINT handler cancels
the main task, the runner's exit pauses the schedules and cancels its runs,
and `asyncio.run` raises `KeyboardInterrupt` for the caller to end quietly.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

from prefect.runner import Runner


class CtrlCRunner(Runner):
    """A `Runner` whose SIGTERM does what Ctrl-C does; nothing else differs."""

    def handle_sigterm(self, *args: Any, **kwargs: Any) -> None:
        """Hand the signal to the SIGINT handler in force (asyncio's, while `start` runs)."""
        frame: FrameType | None = args[1] if len(args) > 1 else None
        on_sigint = signal.getsignal(signal.SIGINT)
        if callable(on_sigint):
            on_sigint(signal.SIGINT, frame)
            return
        raise KeyboardInterrupt  # SIGINT ignored or not ours to call: unwind all the same
