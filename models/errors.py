"""The exception tree. Catch at the level where something can be done.

* AITraderError
  x ConfigurationError          bad settings, caught at start-up
  x DataError
    x DataFileError             missing file, unknown layout, unreadable content
    x InvalidInputError         a request's field is wrong in a way its schema cannot say
  x DatabaseUnavailableError    the database URL cannot be reached
  x NotFoundError
  x ConflictError               the request contradicts the record's state (not paused, exists)
  x AuthenticationError         no credentials, or ones we do not know (API: 401)
  x PermissionDeniedError       known credentials, not enough role (API: 403)
  x RateLimitedError            too many LLM-spending requests for now (API: 429)
  x JobLaunchError              a job's flow run could not be started (API: 503)
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


class InvalidInputError(DataError):
    """One field of a request is invalid given the data (an unknown symbol, since > until)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


class DatabaseUnavailableError(AITraderError):
    """The configured database cannot be connected to."""


class NotFoundError(AITraderError):
    """A requested record does not exist."""


class ConflictError(AITraderError):
    """The request is well formed but the record's state does not allow it."""


class AuthenticationError(AITraderError):
    """The request carries no credentials, or ones that are unknown, expired or revoked."""


class PermissionDeniedError(AITraderError):
    """The credentials are valid but their role does not allow the action."""


class RateLimitedError(AITraderError):
    """Too many requests of a limited kind; `retry_after_s` says when one will be let through."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class JobLaunchError(AITraderError):
    """A job's flow run could not be started: no deployment, no Prefect, no process."""


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


def describe_failure(exc: BaseException) -> str:
    """One line a user can act on: the first real error behind `exc`.

    An `ExceptionGroup` (parallel members, a task group) is not the cause: its
    first leaf is (cancellations skipped, they follow from another error). Our
    own errors already speak to users; anything else is named by its type. A
    database error says what the database said, not the statement.
    """
    leaf = _first_leaf(exc)
    orig = getattr(leaf, "orig", None)  # a SQLAlchemy DBAPIError wraps the driver's error
    if orig is not None:
        return f"database: {_first_line(str(orig))}"
    text = _first_line(str(leaf))
    if isinstance(leaf, AITraderError):
        return text or type(leaf).__name__
    return f"{type(leaf).__name__}: {text}" if text else type(leaf).__name__


def _first_leaf(exc: BaseException) -> BaseException:
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_first_leaf(e) for e in exc.exceptions]
        real = [e for e in leaves if type(e).__name__ != "CancelledError"]
        return (real or leaves or [exc])[0]
    return exc


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else ""
