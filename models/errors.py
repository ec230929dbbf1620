"""The exception tree. Catch at the level where something can be done.

* AITraderError
  x ConfigurationError          bad settings, caught at start-up
  x DataError
    x DataFileError             missing file, unknown layout, unreadable content
  x DatabaseUnavailableError    the database URL cannot be reached
  x NotFoundError
  x LLMError
    x BudgetExceededError       the next call would take a run past its LLM budget
"""

from __future__ import annotations


class AITraderError(Exception):
    """Base of every error AITrader raises on purpose."""


class ConfigurationError(AITraderError):
    """A setting is missing or invalid; the message names the variable."""


class DataError(AITraderError):
    """Input data cannot be used as given."""


class DataFileError(DataError):
    """A data file (bars, instruments) is missing, unreadable or in an unknown layout."""


class DatabaseUnavailableError(AITraderError):
    """The configured database cannot be connected to."""


class NotFoundError(AITraderError):
    """A requested record does not exist."""


class LLMError(AITraderError):
    """Base of the errors the LLM gateway raises (a bad answer is a result, not an error)."""


class BudgetExceededError(LLMError):
    """The next call would take the run past its budget; nothing of that call was spent."""

    def __init__(self, limit_usd: object, spent_usd: object, needed_usd: object) -> None:
        super().__init__(
            f"LLM budget of ${limit_usd} reached: ${spent_usd} spent, "
            f"the next call needs up to ${needed_usd}"
        )
        self.limit_usd, self.spent_usd, self.needed_usd = limit_usd, spent_usd, needed_usd
