"""A token bucket per caller for the routes that spend on language models.

In-process: one realtime process serves the API, and a limit that resets on
restart costs at most one extra bucket of calls. (Behind several replicas
the limit is per replica; the per-run LLM budget is what caps money.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from models.errors import RateLimitedError


class RateLimiter:
    """`per_minute` requests per key, refilled continuously, bursts up to `per_minute`."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate_per_s = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> None:
        """Spend one request for `key`, or raise `RateLimitedError` with the wait."""
        now = self._clock()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / self.rate_per_s
            raise RateLimitedError(
                f"at most {int(self.capacity)} LLM requests a minute; retry in {wait:.0f} s", wait
            )
        self._buckets[key] = (tokens - 1.0, now)
