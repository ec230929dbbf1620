"""The audit log: one row per thing that changed, and who changed it.

Written in the same transaction as the change it describes, so a change
without its record (or a record of a change that rolled back) cannot exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.ops import AuditEvent


def record_event(
    session: Session,
    *,
    actor: str,
    event: str,
    entity_type: str,
    entity_id: object,
    token_id: int | None = None,
    role: str | None = None,
    request_id: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    **detail: Any,
) -> AuditEvent:
    """Add an event; `before`/`after` are the entity's relevant fields around the change."""
    payload: dict[str, Any] = dict(detail)
    if before is not None:
        payload["before"] = dict(before)
    if after is not None:
        payload["after"] = dict(after)
    row = AuditEvent(
        ts=utcnow(),
        actor=actor[:100],
        event=event,
        entity_type=entity_type,
        entity_id=str(entity_id),
        payload=payload,
        token_id=token_id,
        role=role,
        request_id=request_id,
    )
    session.add(row)
    session.flush()
    return row


def audit_events(
    session: Session,
    *,
    event: str | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    actor: str | None = None,
    token_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[AuditEvent]:
    """Newest first, every filter given applied."""
    stmt = select(AuditEvent)
    if event is not None:
        stmt = stmt.where(AuditEvent.event == event)
    if entity_type is not None:
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
    if entity_id is not None:
        stmt = stmt.where(AuditEvent.entity_id == entity_id)
    if actor is not None:
        stmt = stmt.where(AuditEvent.actor == actor)
    if token_id is not None:
        stmt = stmt.where(AuditEvent.token_id == token_id)
    if since is not None:
        stmt = stmt.where(AuditEvent.ts >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.ts < until)
    stmt = stmt.order_by(AuditEvent.ts.desc(), AuditEvent.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(stmt))
