"""Chat conversations and their messages; each conversation belongs to one user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.enums import ChatRole
from models.errors import NotFoundError
from models.users import ChatMessage, Conversation, User


def user_id_of(session: Session, username: str) -> int | None:
    """The user's id, or None if they never wrote anything (no row is made for a read)."""
    return session.scalar(select(User.id).where(User.username == username))


def create_conversation(session: Session, user_id: int, title: str) -> Conversation:
    conversation = Conversation(user_id=user_id, title=title, context={})
    session.add(conversation)
    session.flush()
    return conversation


def conversation(session: Session, conversation_id: int) -> Conversation:
    found = session.get(Conversation, conversation_id)
    if found is None:
        raise NotFoundError(f"no conversation {conversation_id}")
    return found


def owned_conversation(session: Session, conversation_id: int, user_id: int | None) -> Conversation:
    """The conversation if it is this user's; someone else's is as unknown as a missing one."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or user_id is None or conversation.user_id != user_id:
        raise NotFoundError(f"no conversation {conversation_id}")
    return conversation


def list_conversations(
    session: Session,
    user_id: int | None,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    offset: int,
) -> list[Conversation]:
    """The user's conversations, most recently active first (`since`/`until` on that)."""
    if user_id is None:
        return []
    stmt = select(Conversation).where(Conversation.user_id == user_id)
    if since is not None:
        stmt = stmt.where(Conversation.updated_at >= since)
    if until is not None:
        stmt = stmt.where(Conversation.updated_at < until)
    stmt = stmt.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    return list(session.scalars(stmt.offset(offset).limit(limit)))


def messages_of(
    session: Session, conversation_id: int, last: int | None = None
) -> list[ChatMessage]:
    """Oldest first; with `last`, only the newest `last` of them."""
    stmt = select(ChatMessage).where(ChatMessage.conversation_id == conversation_id)
    if last is None:
        return list(session.scalars(stmt.order_by(ChatMessage.id)))
    newest = list(session.scalars(stmt.order_by(ChatMessage.id.desc()).limit(last)))
    return newest[::-1]


def add_message(
    session: Session,
    conversation: Conversation,
    role: ChatRole,
    content: str,
    *,
    llm_call_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> ChatMessage:
    message = ChatMessage(
        conversation_id=conversation.id,
        role=role,
        content=content,
        llm_call_id=llm_call_id,
        payload=payload,
    )
    session.add(message)
    conversation.updated_at = utcnow()
    session.flush()
    return message
