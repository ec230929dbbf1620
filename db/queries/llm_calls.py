"""LLM call rows: the gateway's `CallStore` on the database (record, and the response cache)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from models.enums import LLMCallStatus
from models.llm import LLMCallRecord
from models.ops import LLMCall

USABLE = (LLMCallStatus.OK, LLMCallStatus.REPAIRED)


class SqlCallStore:
    """Each call is its own short transaction: a call's record survives its run failing."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def record(self, call: LLMCallRecord) -> int:
        with unit_of_work(self._sessions) as session:
            row = LLMCall(**call.model_dump())
            session.add(row)
            session.flush()
            return row.id

    def find_cached(self, cache_key: str) -> LLMCallRecord | None:
        """The first usable answer recorded under `cache_key` (the first, so replays agree)."""
        with self._sessions() as session:
            row = session.scalar(
                select(LLMCall)
                .where(LLMCall.cache_key == cache_key, LLMCall.status.in_(USABLE))
                .where(LLMCall.cache_hit.is_(False))
                .order_by(LLMCall.id)
                .limit(1)
            )
            if row is None:
                return None
            return LLMCallRecord.model_validate(
                {name: getattr(row, name) for name in LLMCallRecord.model_fields}
            )
