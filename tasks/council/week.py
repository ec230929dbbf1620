"""Which week a council sits: the day it is given, checked against the bars stored, or the
latest day stored.

A council as of a day the data does not reach would silently reuse the last
week it does (bars_as_of returns what is known by then), under a date that
claims otherwise: the README's walkthrough once sat 2020-06-26 on a sample
that ends 2020-01-10. So a day outside the stored range is refused with the
range that exists, and with no day given the council sits the latest stored
day and says which: "today" is only right when today's bars are in.

A day a few calendar days past the last bar is still that week (a Saturday
sitting on Friday's close, a holiday Monday): `GRACE_DAYS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy.orm import Session

from db.queries.bar_coverage import daily_range
from models.days import not_after_today
from models.errors import InvalidInputError

GRACE_DAYS = 4


@dataclass(frozen=True)
class CouncilDay:
    """The day a council decides at (its close), and why that one."""

    day: date
    defaulted: bool
    first: date
    last: date

    def describe(self) -> str:
        if self.defaulted:
            return f"as of {self.day} (no as_of given: the latest day with stored daily bars)"
        return f"as of {self.day}"


def council_day(
    session: Session, as_of: date | None, universe: list[str] | None = None, field: str = "as_of"
) -> CouncilDay:
    """`as_of` if the stored daily bars cover it, else InvalidInputError naming the range;
    with no `as_of`, the last stored day. `field` names the input in the refusal."""
    if as_of is not None:
        try:
            not_after_today(as_of)
        except ValueError as exc:
            raise InvalidInputError(field, str(exc)) from None
    stored = daily_range(session, universe)
    if stored is None:
        raise InvalidInputError(
            field,
            "no daily bars are stored"
            + (f" for {', '.join(universe)}" if universe else "")
            + ": import some first (`aitrader data import PATH`, or `aitrader demo`)",
        )
    first, last = stored
    if as_of is None:
        return CouncilDay(day=last, defaulted=True, first=first, last=last)
    if as_of < first or as_of > last + timedelta(days=GRACE_DAYS):
        raise InvalidInputError(
            field,
            f"{as_of} is outside the stored daily bars ({first} to {last}): pick a day in "
            "that range, or import the bars that cover it",
        )
    return CouncilDay(day=as_of, defaulted=False, first=first, last=last)
