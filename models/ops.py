"""Operational records: jobs, audit events and LLM calls.

`llm_calls` is cache, audit record and debug trail in one: prompt hash,
model, tokens, cost, latency, raw and parsed output.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from models.base import MONEY, Base, BigId, CreatedMixin, IdMixin, utcnow
from models.enums import LLMCallStatus, RunStatus


class Job(IdMixin, CreatedMixin, Base):
    """A unit of background work a user asked for (import, backtest, council, training)."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_type_status", "type", "status"),)

    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[RunStatus] = mapped_column(default=RunStatus.PENDING)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    flow_run_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # migration 0006: where it runs ("deployment" or "process") and the token that asked
    runner: Mapped[str | None] = mapped_column(String(16))
    token_id: Mapped[int | None] = mapped_column(BigId)


class AuditEvent(IdMixin, Base):
    """A past-tense fact about an entity (`intent.approved`), who caused it and with what."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_entity", "entity_type", "entity_id"),)

    ts: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    event: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # migration 0006: who, over the API (actor is the token's user, or "cli", "flow", ...)
    token_id: Mapped[int | None] = mapped_column(BigId)  # no FK: the record outlives the token
    role: Mapped[str | None] = mapped_column(String(16))
    request_id: Mapped[str | None] = mapped_column(String(64))


class LLMCall(IdMixin, CreatedMixin, Base):
    """One request to a language model and what came back, parsed or not."""

    __tablename__ = "llm_calls"

    run_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("council_runs.id"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(100))
    prompt_hash: Mapped[str] = mapped_column(String(64), index=True)
    messages: Mapped[list[Any]] = mapped_column(default=list)
    raw_output: Mapped[str | None] = mapped_column(Text)
    parsed_output: Mapped[dict[str, Any] | None]
    status: Mapped[LLMCallStatus]
    error: Mapped[str | None] = mapped_column(Text)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    latency_ms: Mapped[int] = mapped_column(default=0)
    # Who asked and how (migration 0003): the audit chain and the response cache need them.
    member: Mapped[str] = mapped_column(String(100), default="", server_default="")
    provider: Mapped[str] = mapped_column(String(32), default="", server_default="")
    schema_name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    cache_key: Mapped[str | None] = mapped_column(String(64), index=True)
    cache_hit: Mapped[bool] = mapped_column(default=False, server_default=false())
    attempts: Mapped[int] = mapped_column(default=1, server_default="1")
    params: Mapped[dict[str, Any] | None]


class IdempotencyRecord(IdMixin, CreatedMixin, Base):
    """One `Idempotency-Key` a client sent with a mutating request, and what it got.

    Keys are scoped by who sent them (a digest of the credentials), so two
    clients cannot see each other's answers. `fingerprint` is the digest of the
    request (method, path, query, body): the same key with another request is
    refused. A record `in_progress` belongs to a request still running (or one
    whose process died: its outcome is unknown, and the key stays refused).
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16))  # in_progress | done
    response_status: Mapped[int | None]
    response_headers: Mapped[list[Any] | None]
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    owner: Mapped[dict[str, Any] | None]  # host and pid of the process answering it
    completed_at: Mapped[datetime | None]
    expires_at: Mapped[datetime] = mapped_column(index=True)
