"""Conversations with the trading assistant, whose answers can propose trades and
watchlist changes (api/chat.py says what happens to them). Each conversation is
its owner's: another user's is a 404."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from api.auth import LLMSpender, Principal, Trader, Viewer
from api.chat import chat_turn, reported_payload
from api.deps import ReadSession, RuntimeDep, WriteSession
from api.pagination import Page, PageDep
from db.queries import conversations as q
from db.queries.audit import record_event
from db.queries.tokens import ensure_user
from models.enums import ChatRole
from models.errors import AITraderError
from models.text import StorableStr
from realtime.runtime import Runtime
from tasks.chat import MessageText

router = APIRouter(prefix="/api/conversations", tags=["conversations"])

ConversationId = Annotated[int, Path(ge=1, le=2**53)]


class ConversationIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"title": "This week's ideas"}]}
    )

    title: StorableStr = Field("New conversation", min_length=1, max_length=200)


class MessageIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"content": "buy 10 AAPL with stop 150 and take profit 200"}]
        },
    )

    content: StorableStr = Field(min_length=1, max_length=4000)


class MessageOut(BaseModel):
    """A message; an assistant's carries in `payload` its structured answer, the trades'
    outcomes (intent ids and statuses) and the watchlist changes made."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    role: ChatRole
    content: str
    llm_call_id: int | None
    payload: dict[str, Any] | None
    created_at: datetime


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class ConversationDetailOut(ConversationOut):
    messages: list[MessageOut]


@router.get("")
def list_conversations(
    caller: Viewer, session: ReadSession, page: PageDep
) -> Page[ConversationOut]:
    """The caller's conversations, most recently active first."""
    rows = q.list_conversations(
        session,
        q.user_id_of(session, caller.actor),
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of([ConversationOut.model_validate(r) for r in rows], page)


@router.post("", status_code=201)
def create_conversation(
    caller: Trader,
    session: WriteSession,
    body: Annotated[ConversationIn, Body()] = ConversationIn(),  # noqa: B008 (immutable)
) -> ConversationOut:
    """Start a conversation (no model is called until a message is sent)."""
    user = ensure_user(session, caller.actor)
    row = q.create_conversation(session, user.id, body.title)
    record_event(
        session,
        **caller.audit(),
        event="conversation.created",
        entity_type="conversation",
        entity_id=row.id,
        after={"title": row.title},
    )
    return ConversationOut.model_validate(row)


@router.get("/{conversation_id}")
def read_conversation(
    conversation_id: ConversationId, caller: Viewer, session: ReadSession
) -> ConversationDetailOut:
    """A conversation with all its messages, oldest first."""
    row = q.owned_conversation(session, conversation_id, q.user_id_of(session, caller.actor))
    messages = [
        MessageOut.model_validate(m).model_copy(update={"payload": reported_payload(session, m)})
        for m in q.messages_of(session, row.id)
    ]
    return ConversationDetailOut(
        **ConversationOut.model_validate(row).model_dump(), messages=messages
    )


@router.post("/{conversation_id}/message")
async def send_message(
    conversation_id: ConversationId, body: MessageIn, caller: LLMSpender, runtime: RuntimeDep
) -> MessageOut:
    """Send a message and wait for the assistant's reply, with what it did. Trades it
    proposes pass the pre-trade checks and wait in `/api/trades/pending` unless
    `CHAT_EXECUTE` is on; an answer the model gets wrong twice does nothing."""
    reply = await chat_turn(runtime, caller, conversation_id, body.content)
    return MessageOut.model_validate(reply)


@router.post("/{conversation_id}/message/stream", response_class=EventSourceResponse)
async def stream_message(
    conversation_id: ConversationId, body: MessageIn, caller: LLMSpender, runtime: RuntimeDep
) -> EventSourceResponse:
    """The same as `/message`, as server-sent events: `token` events with the reply's text
    as the model writes it, then one `message` event with the stored reply (the blocking
    endpoint's body), or an `error` event."""
    await asyncio.to_thread(_check_owner, runtime, caller, conversation_id)  # a 404 before a 200
    return EventSourceResponse(_events(runtime, caller, conversation_id, body.content))


def _check_owner(runtime: Runtime, caller: Principal, conversation_id: int) -> None:
    with runtime.read_sessions() as session:
        q.owned_conversation(session, conversation_id, q.user_id_of(session, caller.actor))


async def _events(
    runtime: Runtime, caller: Principal, conversation_id: int, content: str
) -> AsyncIterator[ServerSentEvent]:
    queue: asyncio.Queue[str] = asyncio.Queue()
    reader = MessageText()

    async def on_text(chunk: str) -> None:
        text = reader.feed(chunk)
        if text:
            queue.put_nowait(text)

    turn = asyncio.create_task(chat_turn(runtime, caller, conversation_id, content, on_text))
    runtime.keep(turn)  # a client that leaves mid-stream must not cut a turn that acts
    try:
        while not turn.done() or not queue.empty():
            getter = asyncio.create_task(queue.get())
            await asyncio.wait({getter, turn}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield ServerSentEvent(data=getter.result(), event="token")
            else:
                getter.cancel()
        reply = turn.result()
    except AITraderError as exc:
        yield ServerSentEvent(data=json.dumps({"detail": str(exc)}), event="error")
        return
    yield ServerSentEvent(data=MessageOut.model_validate(reply).model_dump_json(), event="message")
