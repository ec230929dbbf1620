"""Where the gateway keeps its calls: a small protocol, so `services` needs no database code."""

from __future__ import annotations

from typing import Protocol

from models.llm import LLMCallRecord


class CallStore(Protocol):
    """Blocking calls; the gateway runs them in a worker thread.

    `record` persists a call and returns its id. `find_cached` returns the
    usable (ok or repaired) answer first recorded under a cache key, or None.
    """

    def record(self, call: LLMCallRecord) -> int: ...

    def find_cached(self, cache_key: str) -> LLMCallRecord | None: ...
