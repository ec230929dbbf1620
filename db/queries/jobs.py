"""Job rows as the realtime process watches them."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.enums import RunStatus
from models.ops import Job

FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})


def jobs_to_watch(session: Session, after_id: int, watching: Collection[int]) -> list[Job]:
    """Jobs newer than `after_id`, plus the unfinished ones being watched, oldest first."""
    stmt = select(Job).order_by(Job.id)
    condition = Job.id > after_id
    if watching:
        condition = or_(condition, Job.id.in_(list(watching)))
    return list(session.scalars(stmt.where(condition)))


def newest_job_id(session: Session) -> int:
    return session.scalar(select(Job.id).order_by(Job.id.desc()).limit(1)) or 0
