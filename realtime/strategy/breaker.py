"""A circuit breaker for the models: after repeated failures, stop asking for a while.

Closed: every batch asks the models. `failures` in a row (an error, a timeout,
a NaN answer) open it: for `cooldown_s` no batch asks, and suggestions are made
from the signals alone, saying so. Then one batch is let through (half-open):
success closes the breaker, failure opens it for another cooldown. A model that
fails on every call thus costs one failed call per cooldown, not one per signal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from time import monotonic


@dataclass
class CircuitBreaker:
    failures: int = 5
    cooldown_s: float = 30.0
    clock: Callable[[], float] = monotonic
    state: str = "closed"  # closed | open | half_open
    in_a_row: int = 0
    opened: int = 0  # times it opened
    last_error: str | None = None
    _until: float = field(default=0.0, repr=False)

    def allow(self) -> bool:
        """Whether this batch may ask the models."""
        if self.state == "open" and self.clock() >= self._until:
            self.state = "half_open"
        return self.state != "open"

    def succeeded(self) -> None:
        self.state, self.in_a_row = "closed", 0

    def failed(self, error: str) -> None:
        self.in_a_row += 1
        self.last_error = error
        if self.state == "half_open" or self.in_a_row >= self.failures:
            self.state = "open"
            self._until = self.clock() + self.cooldown_s
            self.opened += 1

    def why_open(self) -> str:
        return (
            f"models paused after {self.in_a_row} failures in a row "
            f"(last: {self.last_error}); retried every {self.cooldown_s:g} s"
        )
