"""Job rows as the realtime process watches them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.enums import RunStatus
from models.errors import NotFoundError
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


def create_job(
    session: Session, kind: str, params: dict[str, Any], token_id: int | None, user_id: int | None
) -> Job:
    """A pending job row; its flow run is started after the transaction commits."""
    job = Job(
        type=kind,
        status=RunStatus.PENDING,
        params=params,
        token_id=token_id,
        created_by=user_id,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job


def list_jobs(
    session: Session,
    *,
    kind: str | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Job]:
    """Newest first, by creation."""
    stmt = select(Job)
    if kind is not None:
        stmt = stmt.where(Job.type == kind)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if since is not None:
        stmt = stmt.where(Job.created_at >= since)
    if until is not None:
        stmt = stmt.where(Job.created_at < until)
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(stmt))


def latest_job(session: Session, kind: str, **params: object) -> Job | None:
    """The newest job of `kind` whose params hold every given key and value."""
    for job in list_jobs(session, kind=kind, limit=200):
        if all(job.params.get(k) == v for k, v in params.items()):
            return job
    return None
