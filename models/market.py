"""Market data rows (instruments, bars, indicators, watchlist) and their schemas.

Bars are stamped with their interval start (`ts`) and become known at
`ts + timeframe.duration`; `db.queries.bars.bars_as_of` relies on that rule.
`adj_close` is stored because users expect it, but it is computed with
corporate actions that happened *after* the bar, so point-in-time code must not
read it (see docs/decisions/0003-point-in-time-bars.md).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints
from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import PRICE, QTY, Base, BigId, CreatedMixin, IdMixin, utcnow
from models.enums import Timeframe

SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9.\-/_]{0,31}$"


def _normalise_symbol(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


Symbol = Annotated[
    str, StringConstraints(pattern=SYMBOL_PATTERN), BeforeValidator(_normalise_symbol)
]
"""A ticker: upper case letters, digits and . - / _, at most 32 characters; input is upper-cased."""


class Instrument(IdMixin, Base):
    """A tradable symbol and what we know about it."""

    __tablename__ = "instruments"

    symbol: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    exchange: Mapped[str | None] = mapped_column(String(32))
    sector: Mapped[str | None] = mapped_column(String(64))
    asset_class: Mapped[str] = mapped_column(String(16), default="equity")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Bar(Base):
    """One OHLCV bar. The primary key (symbol, timeframe, ts) is also the time-range index."""

    __tablename__ = "bars"
    __table_args__ = (Index("ix_bars_timeframe_ts", "timeframe", "ts"),)

    symbol: Mapped[str] = mapped_column(
        String(32), ForeignKey("instruments.symbol", ondelete="CASCADE"), primary_key=True
    )
    timeframe: Mapped[Timeframe] = mapped_column(primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[Decimal] = mapped_column(PRICE)
    high: Mapped[Decimal] = mapped_column(PRICE)
    low: Mapped[Decimal] = mapped_column(PRICE)
    close: Mapped[Decimal] = mapped_column(PRICE)
    adj_close: Mapped[Decimal | None] = mapped_column(PRICE)
    volume: Mapped[Decimal] = mapped_column(QTY)


class Indicator(IdMixin, CreatedMixin, Base):
    """A computed indicator value, keyed like a bar plus the indicator's name (`rsi_14`)."""

    __tablename__ = "indicators"
    __table_args__ = (UniqueConstraint("symbol", "timeframe", "name", "ts"),)

    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    timeframe: Mapped[Timeframe]
    name: Mapped[str] = mapped_column(String(64))
    ts: Mapped[datetime]
    value: Mapped[Decimal] = mapped_column(PRICE)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WatchlistItem(IdMixin, CreatedMixin, Base):
    """A symbol a user follows."""

    __tablename__ = "watchlist"
    __table_args__ = (UniqueConstraint("user_id", "symbol"),)

    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32), ForeignKey("instruments.symbol"))
    note: Mapped[str | None] = mapped_column(String(500))


# --- schemas -----------------------------------------------------------------


class BarOut(BaseModel):
    """A bar as the API and the council see it."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    symbol: str
    timeframe: Timeframe
    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class InstrumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)

    symbol: str
    name: str | None
    exchange: str | None
    sector: str | None
    asset_class: str
    currency: str


class SymbolCoverage(BaseModel):
    """What the database holds for one symbol and timeframe."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    timeframe: Timeframe
    first: datetime
    last: datetime
    bars: int


class RejectedRow(BaseModel):
    """One example of a rejected input row, with its 1-based line number in the file."""

    model_config = ConfigDict(frozen=True)

    line: int
    symbol: str | None
    ts: str | None
    reason: str


class ImportReport(BaseModel):
    """The receipt of one bar-file import: what was read, rejected, written and why."""

    path: str
    timeframe: Timeframe
    rows_read: int
    rows_valid: int
    rejected: dict[str, int]
    examples: list[RejectedRow]
    duplicates_collapsed: int
    inserted: int
    updated: int
    unchanged: int
    symbols: int
    instruments_created: int
    seconds: float

    @property
    def changes(self) -> int:
        return self.inserted + self.updated + self.instruments_created

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())
