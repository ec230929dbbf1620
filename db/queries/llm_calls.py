"""LLM call rows: the gateway's `CallStore` on the database (record, and the response cache)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, unit_of_work
from models.enums import LLMCallStatus
from models.llm import LLMCallRecord
from models.ops import LLMCall

USABLE = (LLMCallStatus.OK, LLMCallStatus.REPAIRED)


class SqlCallStore:
    """Each call is its own short transaction: a call's record survives its run failing."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._reads = read_sessions_of(sessions)  # a cache lookup takes no write lock

    def record(self, call: LLMCallRecord) -> int:
        with unit_of_work(self._sessions) as session:
            row = LLMCall(**call.model_dump())
            session.add(row)
            session.flush()
            return row.id

    def find_cached(self, cache_key: str) -> LLMCallRecord | None:
        """The first usable answer recorded under `cache_key` (the first, so replays agree)."""
        with self._reads() as session:
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


@dataclass(frozen=True)
class CostLine:
    """A run's spend on one (stage, member, model)."""

    stage: str
    member: str
    model: str
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    max_prompt_tokens: int = 0  # the largest prompt of one call: what a window must hold


def run_costs(session: Session, run_id: int) -> list[CostLine]:
    """Tokens and dollars of a run's LLM calls, by stage, member and model."""
    rows = session.execute(
        select(
            LLMCall.stage,
            LLMCall.member,
            LLMCall.model,
            func.count(),
            func.sum(case((LLMCall.cache_hit.is_(True), 1), else_=0)),
            func.sum(LLMCall.prompt_tokens),
            func.sum(LLMCall.completion_tokens),
            func.sum(LLMCall.cost_usd),
            func.max(LLMCall.prompt_tokens),
        )
        .where(LLMCall.run_id == run_id)
        .group_by(LLMCall.stage, LLMCall.member, LLMCall.model)
        .order_by(LLMCall.stage, LLMCall.member, LLMCall.model)
    ).all()
    return [
        CostLine(
            stage=r[0],
            member=r[1],
            model=r[2],
            calls=int(r[3]),
            cache_hits=int(r[4] or 0),
            prompt_tokens=int(r[5] or 0),
            completion_tokens=int(r[6] or 0),
            cost_usd=Decimal(str(r[7] or 0)),
            max_prompt_tokens=int(r[8] or 0),
        )
        for r in rows
    ]
