"""News items and the symbols they name: what the sentiment engine reads, point in time.

An item is known from `known_at`: when it reached us (`received_at`, a live
source's stamp) or, for an archive that never recorded that, when it was
published (`known_from = "published"`, said on every read so a backtest can
tell). Every read takes an `as_of` and sees only items known by then.
`news_symbols` repeats `known_at` so that "this symbol's news up to as_of" is
one index range on both databases (a JSON list cannot be indexed portably).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, CreatedMixin, IdMixin
from models.market import Symbol
from models.text import StorableStr

KnownFrom = Literal["received", "published"]


class NewsItem(IdMixin, CreatedMixin, Base):
    """One item of one source; its id is unique within the source."""

    __tablename__ = "news"
    __table_args__ = (
        UniqueConstraint("source", "source_id"),
        Index("ix_news_known_at", "known_at"),
    )

    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(128))
    headline: Mapped[str] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    symbols: Mapped[list[Any]] = mapped_column(default=list)  # the tickers, upper case
    published_at: Mapped[datetime]
    received_at: Mapped[datetime | None]
    known_at: Mapped[datetime]
    known_from: Mapped[str] = mapped_column(String(16))
    url: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))


class NewsSymbol(Base):
    """An item's symbol, with the item's `known_at` for point-in-time reads by symbol."""

    __tablename__ = "news_symbols"
    __table_args__ = (Index("ix_news_symbols_symbol_known_at", "symbol", "known_at"),)

    news_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("news.id", ondelete="CASCADE"), primary_key=True
    )
    symbol: Mapped[str] = mapped_column(
        String(32), ForeignKey("instruments.symbol"), primary_key=True
    )
    known_at: Mapped[datetime]


Headline = Annotated[StorableStr, Field(min_length=1, max_length=2000)]


class NewsRecord(BaseModel):
    """One item as a source or a file gives it, validated before anything is stored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    source: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
    source_id: Annotated[StorableStr, Field(min_length=1, max_length=128)]
    headline: Headline
    summary: Annotated[StorableStr, Field(max_length=20_000)] | None = None
    symbols: Annotated[list[Symbol], Field(min_length=1, max_length=100)]
    published_at: AwareDatetime
    received_at: AwareDatetime | None = None
    url: Annotated[StorableStr, Field(max_length=2000)] | None = None

    @model_validator(mode="after")
    def _order(self) -> NewsRecord:
        if self.received_at is not None and self.received_at < self.published_at:
            raise ValueError(
                f"received_at {self.received_at.isoformat()} is before published_at "
                f"{self.published_at.isoformat()}"
            )
        self.symbols = list(dict.fromkeys(self.symbols))  # one mention per symbol
        return self

    @property
    def known_at(self) -> datetime:
        return self.received_at or self.published_at

    @property
    def known_from(self) -> KnownFrom:
        return "received" if self.received_at is not None else "published"


class NewsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    source_id: str
    headline: str
    summary: str | None
    symbols: list[str]
    published_at: datetime
    received_at: datetime | None
    known_at: datetime
    known_from: KnownFrom
    url: str | None
