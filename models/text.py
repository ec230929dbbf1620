"""Text a database can store: no NUL characters (Postgres refuses them) and no lone UTF-16
surrogates (no UTF-8 encoding exists for them). JSON lets a client send both (`\\u0000`,
`\\udc58`); without this check they pass validation and fail at the INSERT, as a 500."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


StorableStr = Annotated[str, AfterValidator(storable)]
