"""The suggestions table: written in batches by the strategy engine, read by the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.inserts import insert_new
from models.suggestions import Suggestion

MAX_LIST = 1000


def insert_suggestions(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert suggestion rows (column -> value); one already stored for the same signal is
    skipped, so a batch retried after it partly landed adds nothing twice. Returns new rows."""
    return insert_new(session, Suggestion, rows)


def recent_suggestions(
    session: Session,
    *,
    symbol: str | None = None,
    direction: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Suggestion]:
    """Newest first: the suggestions matching every filter given, at most `limit`."""
    stmt = select(Suggestion)
    if symbol is not None:
        stmt = stmt.where(Suggestion.symbol == symbol)
    if direction is not None:
        stmt = stmt.where(Suggestion.direction == direction)
    if since is not None:
        stmt = stmt.where(Suggestion.ts >= since)
    stmt = stmt.order_by(Suggestion.ts.desc(), Suggestion.id.desc()).limit(min(limit, MAX_LIST))
    return list(session.scalars(stmt))
