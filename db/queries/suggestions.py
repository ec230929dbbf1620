"""The suggestions table: written in batches by the strategy engine, read by the API."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models.suggestions import Suggestion

MAX_LIST = 1000


def insert_suggestions(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert suggestion rows (column -> value); one already stored for the same signal is
    skipped, so a batch retried after it partly landed adds nothing twice. Returns new rows."""
    if not rows:
        return 0
    insert_fn = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    before = session.scalar(select(func.count()).select_from(Suggestion)) or 0
    for start in range(0, len(rows), 500):
        stmt = insert_fn(Suggestion).values(list(rows[start : start + 500]))
        session.execute(stmt.on_conflict_do_nothing())
    after = session.scalar(select(func.count()).select_from(Suggestion)) or 0
    return int(after - before)


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
