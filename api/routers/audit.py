"""The audit log (admin): who changed what over the API and the CLI, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from api.auth import Admin
from api.deps import ReadSession
from api.pagination import Page, PageDep
from db.queries.audit import audit_events

router = APIRouter(prefix="/api/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    ts: datetime
    actor: str
    role: str | None
    token_id: int | None
    request_id: str | None
    event: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]


@router.get("")
def read_audit(
    _caller: Admin,
    session: ReadSession,
    page: PageDep,
    event: Annotated[str | None, Query(max_length=64, description="e.g. job.requested")] = None,
    entity_type: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    token_id: Annotated[int | None, Query(ge=1, le=2**53)] = None,
) -> Page[AuditEventOut]:
    """Audit events matching every filter given; `payload` holds before/after."""
    rows = audit_events(
        session,
        event=event,
        entity_type=entity_type,
        entity_id=entity_id,
        actor=actor,
        token_id=token_id,
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of([AuditEventOut.model_validate(r) for r in rows], page)
