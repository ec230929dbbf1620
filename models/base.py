"""Declarative base and the column types every table shares.

Why these types exist:

* `UTCDateTime` — SQLite has no timezone-aware timestamp, so a plain
  `DateTime(timezone=True)` hands back naive datetimes there and aware ones on
  Postgres. This type refuses naive input (a naive time is a bug waiting for a
  daylight-saving change) and always returns aware UTC, on both databases.
* `PRICE`, `QTY`, `MONEY` — money and prices are `Numeric`, never float columns.
* `JSONDoc` — JSON everywhere, JSONB on Postgres (indexable, compact).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Enum, Integer, MetaData, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

# Stable constraint names: Alembic can only drop or alter what it can name.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is timezone-aware UTC in Python on every database."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: AITrader stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        # SQLite stores text; keep one canonical, sortable form without an offset.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current instant as aware UTC; the one clock rows are stamped with."""
    return datetime.now(UTC)


# Numeric precision: 8 decimals covers crypto quantities and sub-cent prices.
PRICE = Numeric(24, 8)
QTY = Numeric(24, 8)
MONEY = Numeric(24, 8)
RATIO = Numeric(12, 6)

ENUM_LENGTH = 24

JSONDoc = JSON().with_variant(JSONB(), "postgresql")

# SQLite only autoincrements an INTEGER PRIMARY KEY; Postgres gets 64-bit ids.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Base of every table. The annotation map gives plain annotations their SQL types."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        Decimal: PRICE,
        dict[str, Any]: JSONDoc,
        list[Any]: JSONDoc,
        # Any StrEnum annotation: a VARCHAR holding the enum's value, no native DB enum, so
        # adding a member never needs an ALTER TYPE and both databases migrate alike.
        StrEnum: Enum(
            StrEnum,
            native_enum=False,
            length=ENUM_LENGTH,
            values_callable=lambda members: [m.value for m in members],
            validate_strings=True,
        ),
    }


class IdMixin:
    """A surrogate 64-bit primary key."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)


class CreatedMixin:
    """When the row was written (not when the thing it describes happened)."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
