"""Insert rows, skipping those a unique key already holds: one statement per chunk, both
databases, how many landed counted from the statement (not by counting the table)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import CursorResult
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

CHUNK = 500


def insert_new(session: Session, table: type[Any], rows: Sequence[dict[str, Any]]) -> int:
    """Insert `rows` into `table`, skipping any that collide with a stored one; how many landed.
    A retried batch, or two writers racing over the same rows, adds nothing twice."""
    insert_fn = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    added = 0
    for start in range(0, len(rows), CHUNK):
        stmt = insert_fn(table).values(list(rows[start : start + CHUNK])).on_conflict_do_nothing()
        result = session.execute(stmt)
        assert isinstance(result, CursorResult)
        added += max(result.rowcount, 0)
    return added
