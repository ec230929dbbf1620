"""Pace a publisher: wake when something changed, at most about once per interval.

Publishing on a fixed timer is out of phase with the source: a tick that
lands just after the timer fired waits a whole interval. A pacer wakes as
soon as `notify` is called and also after an interval without any notice, so
a change nobody announced is still published.

The rate limit is a minimum spacing of `(1 - slack) * interval` between the
moments publishes became *due*:

* measured between due times, not finish times, so a slow publish (80 ms
  for a 2,000-client frame) is not added to the next wait;
* with slack (10 % by default), because the default source ticks at exactly
  the push interval: with an exact minimum gap (or a token bucket), one late
  publish would fix the phase at that lag forever. With slack, a lag shrinks
  by a tenth of the interval per tick until publishes follow ticks again.

So `SSE_INTERVAL_MS=500` means at most one push per 450 ms, and under normal
conditions one push per source tick.
"""

from __future__ import annotations

import asyncio
import contextlib


def next_due(trigger: float, last_due: float, min_gap: float) -> float:
    """When a change noticed at `trigger` may be published, given the previous publish's due time.

    Pure, so the properties that matter (no drift, no phase lock, the rate
    limit) are tested as arithmetic rather than with a clock.
    """
    return max(trigger, last_due + min_gap)


class ChangePacer:
    def __init__(self, interval_s: float, *, slack: float = 0.1) -> None:
        self.interval_s = interval_s
        self.min_gap_s = interval_s * (1 - slack)
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
        """Return when a change (or an interval without notice) may be published."""
        loop = asyncio.get_running_loop()
        trigger = None
        # `asyncio.timeout`, not `wait_for`: on 3.11, a cancel that arrives as the event is
        # set is swallowed by `wait_for`, and the loop calling us runs on after its stop().
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.interval_s):
                await self._changed.wait()
            trigger = self._changed_at
        self._due = max(
            loop.time() if trigger is None else trigger, self._last_due + self.min_gap_s
        )
        delay = self._due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._changed.clear()

    def published(self) -> None:
        """The publish that the last `wait` allowed happened; the next is due a gap later."""
        self._last_due = self._due
