"""How many model calls may be in flight at once in this process: per provider, or per
model where the models file gives one its own `concurrency`.

Threading semaphores, not asyncio ones: Prefect may run a stage's tasks on several
threads, each with its own event loop (docs/decisions/0007 says why not a Prefect
concurrency limit).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping


class ProviderLimits:
    """At most `limit` calls in flight per provider in this process, across threads."""

    def __init__(self, default: int = 4, per_provider: Mapping[str, int] | None = None) -> None:
        self._default = default
        self._per_provider = dict(per_provider or {})
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}
        self._lock = threading.Lock()

    def semaphore(self, provider: str, limit: int | None = None) -> threading.BoundedSemaphore:
        """The slot pool of `provider` (or of any key, e.g. one model, with its own `limit`)."""
        with self._lock:
            sem = self._semaphores.get(provider)
            if sem is None:
                limit = limit or self._per_provider.get(provider, self._default)
                sem = self._semaphores[provider] = threading.BoundedSemaphore(limit)
            return sem
