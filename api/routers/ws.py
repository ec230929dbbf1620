"""`/ws`: subscribe to topics, receive `{type, ts, data}` messages.

Client commands (JSON): `{"action": "subscribe"|"unsubscribe", "topics": [...],
"symbols": [...]}` (no symbols: all) and `{"action": "ping"}`. Connecting needs a
viewer token (`Authorization: Bearer`, or `?access_token=` for browsers), or
a local connection with API_ANONYMOUS_READ; otherwise it is closed with 1008. A bad command
gets an `error` message back and the connection stays open: one client's
mistake is its own problem, not the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import authorise, bearer_secret
from api.runtime import Runtime
from models.enums import Role
from models.errors import AuthenticationError, PermissionDeniedError
from models.market import Symbol
from realtime.ws_hub import Topic, WSClient, WSHub

router = APIRouter(tags=["stream"])

MAX_COMMAND_BYTES = 16_384
POLICY_VIOLATION = 1008  # the close code for "not allowed": no token, or a bad one


class WSCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["subscribe", "unsubscribe", "ping"]
    topics: list[Topic] = Field(default_factory=list, max_length=len(Topic))
    symbols: list[Symbol] = Field(default_factory=list, max_length=500)


@router.websocket("/ws")
async def websocket_feed(websocket: WebSocket) -> None:
    runtime: Runtime = websocket.app.state.runtime
    hub = runtime.ws_hub
    try:
        await authorise(websocket, bearer_secret(websocket), Role.VIEWER)
    except (AuthenticationError, PermissionDeniedError) as exc:
        await websocket.close(code=POLICY_VIOLATION, reason=str(exc)[:120])
        return
    await websocket.accept()
    client = hub.connect()
    writer = asyncio.create_task(_write(websocket, client), name=f"ws-writer-{client.id}")
    try:
        while True:
            raw = await websocket.receive_text()
            _handle(hub, client, raw, runtime.status)
    except WebSocketDisconnect:
        pass
    finally:
        hub.disconnect(client)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError, WebSocketDisconnect):
            await writer


async def _write(websocket: WebSocket, client: WSClient) -> None:
    while True:
        await websocket.send_text(await client.queue.get())


def _handle(hub: WSHub, client: WSClient, raw: str, status: Callable[[], object]) -> None:
    if len(raw) > MAX_COMMAND_BYTES:
        hub.send(client, "error", {"detail": f"command longer than {MAX_COMMAND_BYTES} bytes"})
        return
    try:
        command = WSCommand.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        hub.send(client, "error", {"detail": f"invalid JSON: {exc.msg}"})
        return
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        hub.send(client, "error", {"detail": "invalid command", "problems": problems})
        return
    if command.action == "ping":
        hub.send(client, "pong", {})
        return
    if not command.topics:
        hub.send(client, "error", {"detail": f"{command.action} needs at least one topic"})
        return
    symbols = frozenset(command.symbols) or None
    if command.action == "subscribe":
        hub.send(
            client,
            "subscribed",
            {"topics": sorted(command.topics), "symbols": sorted(symbols or [])},
        )
        hub.subscribe(client, command.topics, symbols)
        if Topic.SYSTEM_STATUS in command.topics:
            hub.send(client, Topic.SYSTEM_STATUS.value, status())
    else:
        hub.unsubscribe(client, command.topics)
        hub.send(client, "unsubscribed", {"topics": sorted(command.topics)})
