"""A run's LLM budget in USD, shared by every call of the run, thread-safe.

A call first reserves its worst case (its prompt plus `max_tokens` of answer
at the model's price); if that does not fit under the limit with what is
spent and reserved already, the call is refused with `BudgetExceededError`
before anything is sent. When the answer comes back the reservation is
settled at the real cost. So concurrent calls cannot jointly overshoot, and a
run that stops on its budget has spent at most its limit.
"""

from __future__ import annotations

import threading
from decimal import Decimal

from models.errors import BudgetExceededError


class RunBudget:
    def __init__(self, limit_usd: Decimal | float | str) -> None:
        self.limit_usd = Decimal(str(limit_usd))
        if self.limit_usd < 0:
            raise ValueError(f"a budget cannot be negative, got {limit_usd}")
        self.spent_usd = Decimal(0)
        self._reserved = Decimal(0)
        self._lock = threading.Lock()

    @property
    def remaining_usd(self) -> Decimal:
        with self._lock:
            return self.limit_usd - self.spent_usd - self._reserved

    def reserve(self, worst_case_usd: Decimal) -> Decimal:
        """Hold `worst_case_usd` for a call, or raise if it does not fit."""
        with self._lock:
            if self.spent_usd + self._reserved + worst_case_usd > self.limit_usd:
                raise BudgetExceededError(self.limit_usd, self.spent_usd, worst_case_usd)
            self._reserved += worst_case_usd
            return worst_case_usd

    def settle(self, reservation: Decimal, actual_usd: Decimal) -> None:
        """Release a reservation and charge what the call really cost."""
        with self._lock:
            self._reserved -= reservation
            self.spent_usd += actual_usd
