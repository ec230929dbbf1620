"""API view of a Level-2 order book: one symbol's NBBO and each venue's depth.

Prices and sizes are floats, like every hot-path price (docs/decisions/0004).
Any derived figure may be missing (no bid, no ask, no size): it is then None,
and a non-finite value is turned into None here at the edge, so a response
never carries NaN or fails to serialise.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _finite_or_none(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


MaybeFloat = Annotated[float | None, AfterValidator(_finite_or_none)]
"""A float that is None when unknown; NaN and infinities become None too."""


class BookLevelOut(BaseModel):
    """The total size resting at one price on one venue."""

    model_config = ConfigDict(frozen=True)

    price: float
    size: float


class NBBOOut(BaseModel):
    """Best bid and offer over the venues whose own book is valid, and figures derived from them.

    `spread` is ask - bid (negative when crossed); `microprice` leans the mid
    towards the thinner side; `imbalance` is (bid size - ask size) / total over
    the top `BookOut.levels` price levels per side, sizes at one price summed
    across valid venues, in [-1, 1].
    """

    model_config = ConfigDict(frozen=True)

    bid: MaybeFloat = None
    bid_size: MaybeFloat = None
    bid_venue: str | None = None
    ask: MaybeFloat = None
    ask_size: MaybeFloat = None
    ask_venue: str | None = None
    spread: MaybeFloat = None
    mid: MaybeFloat = None
    microprice: MaybeFloat = None
    imbalance: MaybeFloat = None


class VenueBookOut(BaseModel):
    """One venue's book: its sync state and its best `levels` per side, best first."""

    model_config = ConfigDict(frozen=True)

    venue: str
    seq: int = Field(description="Sequence number of the last message applied.")
    ts: datetime | None = Field(description="Event time of the last message applied.")
    valid: bool = Field(description="Synced, not crossed or locked, at least one level.")
    crossed: bool
    locked: bool
    needs_resync: bool = Field(description="A sequence gap was seen; waiting for a snapshot.")
    gap_count: int
    bids: list[BookLevelOut] = Field(description="Descending price.")
    asks: list[BookLevelOut] = Field(description="Ascending price.")


class BookOut(BaseModel):
    """One symbol across venues, as `GET /api/book/{symbol}` returns it.

    `valid` means safe to quote from: at least one venue book is valid and the
    NBBO is neither crossed nor locked. `ts` is the newest venue event time.
    """

    model_config = ConfigDict(frozen=True)

    symbol: str
    ts: datetime | None
    levels: int = Field(description="Depth asked for, per side and venue.")
    nbbo: NBBOOut
    crossed: bool
    locked: bool
    valid: bool
    venues: list[VenueBookOut]
