"""Pace a publisher: wake when something changed, at most once per interval.

Publishing on a fixed timer is out of phase with the source: a tick that
lands just after the timer fired waits a whole interval. A pacer wakes as
soon as `notify` is called, unless the previous publish became due less than
an interval ago, and also wakes after an interval without any notice, so a
change nobody announced is still published.

Spacing is measured between the moments publishes became *due*, not when
they finished: otherwise each publish's own duration (80 ms for a 2,000-client
frame) is added to the next wait and the lag behind the source grows frame
by frame.
"""

from __future__ import annotations

import asyncio


class ChangePacer:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._changed = asyncio.Event()
        self._changed_at = 0.0  # loop time of the first notice since the last wait
        self._last_due = float("-inf")
        self._due = float("-inf")

    def notify(self) -> None:
        """Something changed. Cheap enough to call on every tick (from the loop's thread)."""
        if not self._changed.is_set():
            self._changed_at = asyncio.get_running_loop().time()
            self._changed.set()

    async def wait(self) -> None:
        """Return when it may be time to publish: a change was announced or an interval passed.

        Never sooner than one interval after the previous publish became due.
        """
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(self._changed.wait(), timeout=self.interval_s)
            trigger = self._changed_at
        except TimeoutError:
            trigger = loop.time()
        self._due = max(trigger, self._last_due + self.interval_s)
        delay = self._due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._changed.clear()

    def published(self) -> None:
        """The publish that the last `wait` allowed happened; the next is an interval later."""
        self._last_due = self._due
