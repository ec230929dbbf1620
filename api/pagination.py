"""One way to page and filter by time, shared by every list endpoint.

`limit` (1-500, default 50) and `offset`; `since` (inclusive) and `until`
(exclusive), tz-aware ISO 8601 instants, applied to the list's natural time
(an order's creation, a fill's execution, a snapshot's instant). The
response is a `Page`: the items, and `next_offset` when there are more.
Query functions are asked for `limit + 1` rows, so "more" costs no COUNT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field

from models.errors import InvalidInputError

T = TypeVar("T")
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC; one that has no UTC representation (year 1 at +01:00) is invalid."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant is out of range once converted to UTC") from exc


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int
    since: datetime | None
    until: datetime | None

    @property
    def fetch(self) -> int:
        """How many rows to ask the query for: one more than a page, to know if more exist."""
        return self.limit + 1


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Items to skip.")] = 0,
    since: Annotated[
        Instant | None, Query(description="At or after this instant (ISO 8601 with offset).")
    ] = None,
    until: Annotated[
        Instant | None, Query(description="Before this instant (ISO 8601 with offset).")
    ] = None,
) -> PageParams:
    if since is not None and until is not None and until <= since:
        raise InvalidInputError("query.until", "must be later than since")
    return PageParams(limit, offset, since, until)


PageDep = Annotated[PageParams, Depends(page_params)]


class Page(BaseModel, Generic[T]):
    """One page of a list, newest first unless the endpoint says otherwise."""

    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Pass as `offset` for the next page; null: none.")

    @classmethod
    def of(cls, rows: Sequence[T], params: PageParams) -> Page[T]:
        more = len(rows) > params.limit
        return cls(
            items=list(rows[: params.limit]),
            limit=params.limit,
            offset=params.offset,
            next_offset=params.offset + params.limit if more else None,
        )
