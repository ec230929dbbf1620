"""Query parameters more than one router takes: a comma-separated symbol list, a day."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import Query
from pydantic import TypeAdapter, ValidationError

from models.errors import InvalidInputError
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
    Query(description="As of this day's close (point in time); default: the newest stored bar."),
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
