"""Users, their API tokens (stored hashed), and chat conversations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, CreatedMixin, IdMixin, utcnow
from models.enums import ChatRole, Role


class User(IdMixin, CreatedMixin, Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    is_admin: Mapped[bool] = mapped_column(default=False)


class ApiToken(IdMixin, CreatedMixin, Base):
    """An API token. Only its SHA-256 is stored; `prefix` lets a user tell tokens apart."""

    __tablename__ = "api_tokens"

    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    # migration 0006: what the token may do (models.enums.Role)
    role: Mapped[Role] = mapped_column(default=Role.VIEWER, server_default=Role.VIEWER.value)


class Conversation(IdMixin, CreatedMixin, Base):
    __tablename__ = "conversations"

    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChatMessage(IdMixin, CreatedMixin, Base):
    __tablename__ = "chat_messages"

    conversation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[ChatRole]
    content: Mapped[str] = mapped_column(Text)
    llm_call_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("llm_calls.id"))
    # migration 0006: an assistant message's structured answer and what was done with it
    payload: Mapped[dict[str, Any] | None]
