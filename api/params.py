"""Query parameters more than one router takes: a comma-separated symbol list, a day.

`stored_universe` and `day_or_newest` turn them into what the point-in-time
readers take (tasks/market_snapshot.py): the symbols, each of which has daily
bars (else 422 naming `query.symbols`: a typo is not an empty answer), and the
day, by default the newest stored bar's.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from db.queries.bars import newest_bar_day, stored_symbols
from models.days import FIRST_DAY, LAST_DAY
from models.errors import InvalidInputError, NotFoundError
from models.market import Symbol

MAX_SYMBOLS = 500
_SYMBOL: TypeAdapter[str] = TypeAdapter(Symbol)

SymbolsQuery = Annotated[
    str | None,
    Query(
        max_length=4000,
        description="Comma-separated tickers, case does not matter; default: every stored one.",
        examples=["AAPL,MSFT"],
    ),
]
AsOfQuery = Annotated[
    date | None,
    Query(
        ge=FIRST_DAY,  # far from date's limits: a window reaching past them cannot exist
        le=LAST_DAY,
        description="As of this day's close (point in time); default: the newest stored bar.",
    ),
]


def parse_symbols(value: str | None, field: str = "query.symbols") -> list[str] | None:
    """The distinct, upper-cased symbols of a comma-separated list; None if not given."""
    if value is None:
        return None
    items = [s.strip() for s in value.split(",") if s.strip()]
    if not items:
        raise InvalidInputError(field, "name at least one symbol")
    if len(items) > MAX_SYMBOLS:
        raise InvalidInputError(field, f"at most {MAX_SYMBOLS} symbols")
    try:
        return sorted({_SYMBOL.validate_python(s) for s in items})
    except ValidationError as exc:
        raise InvalidInputError(field, exc.errors()[0]["msg"]) from None


def stored_universe(session: Session, value: str | None, field: str = "query.symbols") -> list[str]:
    """The symbols of `value` (default: every one with daily bars), each with daily bars."""
    stored = stored_symbols(session)
    if not stored:
        raise NotFoundError("no daily bars stored: `aitrader data import` some first")
    wanted = parse_symbols(value, field)
    if wanted is None:
        return stored
    unknown = sorted(set(wanted) - set(stored))
    if unknown:
        raise InvalidInputError(field, f"no daily bars stored for {', '.join(unknown)}")
    return wanted


def day_or_newest(session: Session, as_of: date | None) -> date:
    """`as_of`, or the day of the newest stored daily bar."""
    day = as_of or newest_bar_day(session)
    if day is None:
        raise NotFoundError("no daily bars stored: `aitrader data import` some first")
    return day
