"""Calendar days as a request may name them: query parameters, job bodies, backtests.

`date` runs from year 1 to 9999, and the code behind an as-of day does arithmetic on it:
a day means its close, known at the next midnight (`day + 1 day`), and windows reach back
from it. At `date.max` that overflows, so a council job `as_of: 9999-12-31` used to be
accepted (202) and then fail inside its flow. `Day` keeps every day far inside the range
(1900 to 2999), so a window either side exists and the refusal is a 422 naming the field.

`DecisionDay` is also at most today (UTC): a point-in-time decision is made at a close
that has happened, or today's as it comes; "as of" next year would just be today's data
under a future date. Backtest days are plain `Day`s: a range past today only ends early.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from pydantic import AfterValidator, Field

from models.errors import InvalidInputError

FIRST_DAY = date(1900, 1, 1)
LAST_DAY = date(2999, 12, 31)


def not_after_today(day: date) -> date:
    """`day`, unless it is after today in UTC (the clock the as-of instants use)."""
    today = datetime.now(UTC).date()
    if day > today:
        raise ValueError(
            f"{day} is after today ({today}, UTC): a point-in-time decision cannot be "
            "made as of a day still to come"
        )
    return day


def close_instant(day: date) -> datetime:
    """The instant a day's close is known, the as-of of a decision on that day: the next
    midnight, UTC."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def decision_instant(as_of: date | datetime) -> datetime:
    """The instant a decision "as of" `as_of` is made: a date means its close (`close_instant`),
    a naive datetime is UTC. A day to come is refused (InvalidInputError on `as_of`), as the
    API refuses it, whoever asks."""
    instant = as_of if isinstance(as_of, datetime) else close_instant(as_of)
    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    day = as_of.date() if isinstance(as_of, datetime) else as_of
    try:
        not_after_today(day)
    except ValueError as exc:
        raise InvalidInputError("as_of", str(exc)) from None
    return instant


Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""A day from 1900-01-01 to 2999-12-31: far enough inside `date` for a day either side."""

DecisionDay = Annotated[Day, AfterValidator(not_after_today)]
"""A `Day` that is not after today (UTC): what a council or research job may be as of."""
