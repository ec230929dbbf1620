"""When the garbage collector may stop the world: right after a price frame, not mid-fan-out.

With 2,000 streaming connections a full (generation 2) collection takes
100-300 ms, and CPython starts one whenever allocations say so, often in the
middle of a frame. One such stall per 20 s puts p99 lag over 100 ms
(bench/README.md). The policy:

* after start-up, collect and freeze: long-lived start-up objects leave the
  collector's view;
* raise the generation-2 threshold so the allocator never starts a full
  collection (generations 0 and 1 still run, and they are short);
* every `full_every_s`, right after a frame has gone out, unfreeze, collect
  everything and freeze again, so cyclic garbage is still reclaimed over
  weeks of uptime, at a moment with a whole interval of slack before the next
  frame.

Process-wide by nature (the collector is global), so the runtime applies it
once; `restore()` puts CPython's defaults back (tests, shutdown).
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

NEVER = 1_000_000_000  # generation-2 threshold the allocator cannot reach
CPYTHON_GEN2 = 10  # CPython's own generation-2 threshold


class GCPolicy:
    def __init__(self, full_every_s: float) -> None:
        self.full_every_s = full_every_s
        saved = gc.get_threshold()
        # Another policy in this process (a second app in one test worker)
        # may still be applied: never save its NEVER as "the default".
        self._saved = saved if saved[2] < NEVER else (saved[0], saved[1], CPYTHON_GEN2)
        self.full_collections = 0
        self.last_pause_ms = 0.0

    def apply(self) -> None:
        gc.collect()
        gc.freeze()
        gen0, gen1, _ = self._saved
        gc.set_threshold(gen0, gen1, NEVER)

    def restore(self) -> None:
        gc.set_threshold(*self._saved)
        gc.unfreeze()

    def collect_now(self) -> None:
        """A full collection, including what earlier freezes kept out of view."""
        started = time.perf_counter()
        gc.unfreeze()
        freed = gc.collect()
        gc.freeze()
        self.last_pause_ms = (time.perf_counter() - started) * 1000
        self.full_collections += 1
        logger.info("gc.full", extra={"freed": freed, "ms": round(self.last_pause_ms, 1)})

    async def run(
        self,
        after_frame: Callable[[], Awaitable[object]],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        """Forever: wait `full_every_s`, then collect right after the next frame."""
        while True:
            await sleep(self.full_every_s)
            await after_frame()
            self.collect_now()
