"""When to try a model call again, and how long to wait first.

Retried: rate limits (429), timeouts, connection failures and server errors
(5xx). Not retried: anything that says the request itself is wrong (400,
401, 404, context window), which would fail the same way again. A 429's
`Retry-After` (seconds or an HTTP date) is honoured, capped; otherwise
exponential backoff with full jitter.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from litellm.exceptions import (
    APIConnectionError,
    BadGatewayError,
    InternalServerError,
    RateLimitError,
    ServiceUnavailableError,
    Timeout,
)

RETRYABLE: tuple[type[BaseException], ...] = (
    RateLimitError,
    Timeout,
    APIConnectionError,
    InternalServerError,
    ServiceUnavailableError,
    BadGatewayError,
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4  # tries in all, the first included
    base_s: float = 0.5
    max_backoff_s: float = 20.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, exc: BaseException, rng: random.Random) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        hinted = retry_after_s(exc)
        if hinted is not None:
            return min(hinted, self.max_retry_after_s)
        return rng.uniform(0, min(self.max_backoff_s, self.base_s * 2 ** (attempt - 1)))


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, RETRYABLE)


def retry_after_s(exc: BaseException) -> float | None:
    """The server's Retry-After, in seconds, if the exception carries one."""
    value = _header(exc, "retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _header(exc: BaseException, name: str) -> str | None:
    sources: list[Any] = [
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
    ]
    for headers in sources:
        if headers is None:
            continue
        try:
            value = headers.get(name) or headers.get(name.title())
        except AttributeError:
            continue
        if value is not None:
            return str(value)
    return None
