"""Idempotency keys: claim one for a request, keep its answer, replay it to a retry.

The claim is committed before the request acts, so a concurrent retry with the
same key sees it (and is told to wait) instead of acting twice; the answer is
stored when the request ends. A request that answered 503 or 429 did nothing,
by the house rule, so its key is released and the retry acts. See
api/idempotency.py for the HTTP side.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.ops import IdempotencyRecord

IN_PROGRESS = "in_progress"
DONE = "done"


@dataclass(frozen=True)
class Claim:
    """What a claim found: `record` is None if this request now owns the key."""

    record: IdempotencyRecord | None
    same_request: bool = True


def claim_key(
    session: Session,
    *,
    scope: str,
    key: str,
    fingerprint: str,
    method: str,
    path: str,
    owner: dict[str, Any],
    keep_for: timedelta,
) -> Claim:
    """Claim `key` for this request, or return the record of the request that holds it."""
    existing = _find(session, scope, key)
    if existing is not None and existing.expires_at <= utcnow():
        session.delete(existing)  # an expired key is free again
        session.flush()
        existing = None
    if existing is not None:
        return Claim(existing, existing.fingerprint == fingerprint)
    record = IdempotencyRecord(
        scope=scope,
        key=key,
        fingerprint=fingerprint,
        method=method,
        path=path[:512],
        status=IN_PROGRESS,
        owner=owner,
        expires_at=utcnow() + keep_for,
    )
    try:
        with session.begin_nested():
            session.add(record)
    except IntegrityError:  # claimed between our read and our write (Postgres)
        found = _find(session, scope, key)
        assert found is not None
        return Claim(found, found.fingerprint == fingerprint)
    return Claim(None)


def complete_key(
    session: Session,
    scope: str,
    key: str,
    status: int,
    headers: list[tuple[str, str]],
    body: bytes,
) -> None:
    """Keep the answer a request got, for its retries."""
    record = _find(session, scope, key)
    if record is None:
        return
    record.status = DONE
    record.response_status = status
    record.response_headers = [list(h) for h in headers]
    record.response_body = body
    record.completed_at = utcnow()


def release_key(session: Session, scope: str, key: str) -> None:
    """Free a key whose request did nothing (503, 429): its retry must act."""
    session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
            IdempotencyRecord.status == IN_PROGRESS,
        )
    )


def prune_keys(session: Session, now: datetime | None = None) -> int:
    """Delete expired keys; how many."""
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= (now or utcnow()))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _find(session: Session, scope: str, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
        )
    )
