"""`/ws`: subscribe to topics, receive `{type, ts, data}` messages.

Client commands (JSON):

* `{"action": "subscribe", "topics": [...], "symbols": [...], "since": "<instant>"}`:
  no symbols means all; `since` is optional and only with `trading_signals`.
  Answered by `{"type": "subscribed", "data": {"topics", "symbols", "since"}}`.
* `{"action": "unsubscribe", "topics": [...]}`, answered by `unsubscribed`.
* `{"action": "ping"}`, answered by `pong`.

Catching up on `trading_signals`: `since` is an ISO 8601 instant with an
offset, inclusive, exactly as in GET /api/signals?since=. After `subscribed`
(the command's other topics are live from there) the client gets:

1. the stored signals at or after `since` that match `symbols`: at most
   1,000, the newest of them, oldest first; then those published meanwhile
   that were not stored yet. Each is an ordinary trading_signals message,
   `{"type": "trading_signals", "ts", "data": {"event": "signal", ...}}`.
2. `{"type": "caught_up", "data": {"topic": "trading_signals", "since",
   "replayed", "truncated"}}`: `replayed` counts the messages of step 1;
   `truncated: true` says older signals at or after the asked-for instant
   were left out, and `since` is then where the replay starts.
3. live signals.

No signal comes twice across the three (its identity is strategy, symbol,
kind and ts, the signals table's unique key). To resume after a disconnect,
send the `ts` of the last signal received: being inclusive, that one comes
again, recognisable by its identity. A catch-up that cannot read the table
ends in `{"type": "error", "data": {"detail", "topic": "trading_signals"}}`
with trading_signals left unsubscribed: send the command again. A later
command naming trading_signals cancels a catch-up still running.

Connecting needs a viewer token (`Authorization: Bearer`, or
`?access_token=` for browsers), or a local connection with
API_ANONYMOUS_READ; otherwise it is closed with 1008. A bad command gets an
`error` message back, does nothing, and the connection stays open: one
client's mistake is its own problem, not the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.auth import authorise, bearer_secret
from api.routers.signals import Instant
from models.enums import Role
from models.errors import AuthenticationError, PermissionDeniedError
from models.market import Symbol
from realtime.bus_bridge import signal_backlog
from realtime.runtime import Runtime
from realtime.ws_hub import SymbolFilter, Topic, WSClient, WSHub

router = APIRouter(tags=["stream"])
logger = logging.getLogger(__name__)

MAX_COMMAND_BYTES = 16_384
POLICY_VIOLATION = 1008  # the close code for "not allowed": no token, or a bad one


class WSCommand(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["subscribe", "unsubscribe", "ping"]
    topics: list[Topic] = Field(default_factory=list, max_length=len(Topic))
    symbols: list[Symbol] = Field(default_factory=list, max_length=500)
    since: Instant | None = None  # trading_signals only: replay the stored ones first


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
    catching_up: asyncio.Task[None] | None = None
    try:
        while True:
            command = _parse(hub, client, await websocket.receive_text())
            if command is None:
                continue
            if catching_up is not None and Topic.TRADING_SIGNALS in command.topics:
                catching_up.cancel()  # the newer command about the topic wins
                catching_up = None
            since = _handle(hub, client, command, runtime.status)
            if since is not None:
                catching_up = asyncio.create_task(
                    _catch_up(runtime, client, since, _symbols(command)),
                    name=f"ws-catch-up-{client.id}",
                )
    except WebSocketDisconnect:
        pass
    finally:
        hub.disconnect(client)
        for task in (catching_up, writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, RuntimeError, WebSocketDisconnect):
                    await task


async def _write(websocket: WebSocket, client: WSClient) -> None:
    while True:
        await websocket.send_text(await client.next())


async def _catch_up(
    runtime: Runtime, client: WSClient, since: datetime, symbols: SymbolFilter
) -> None:
    hub = runtime.ws_hub
    try:
        await hub.replay(
            client,
            Topic.TRADING_SIGNALS,
            symbols,
            lambda: asyncio.to_thread(signal_backlog, runtime.read_sessions, since, symbols),
        )
    except Exception as exc:  # a process edge: one client's failed catch-up ends only itself
        logger.exception("ws.catch_up_failed", extra={"client": client.id})
        detail = (
            f"stored signals could not be read ({type(exc).__name__}); "
            "trading_signals is not subscribed: subscribe again"
        )
        hub.send(client, "error", {"detail": detail, "topic": Topic.TRADING_SIGNALS.value})


def _parse(hub: WSHub, client: WSClient, raw: str) -> WSCommand | None:
    """The command, or None after telling the client what is wrong with it."""
    if len(raw) > MAX_COMMAND_BYTES:
        hub.send(client, "error", {"detail": f"command longer than {MAX_COMMAND_BYTES} bytes"})
        return None
    try:
        command = WSCommand.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        hub.send(client, "error", {"detail": f"invalid JSON: {exc.msg}"})
        return None
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        hub.send(client, "error", {"detail": "invalid command", "problems": problems})
        return None
    if command.action == "ping":
        return command
    if not command.topics:
        hub.send(client, "error", {"detail": f"{command.action} needs at least one topic"})
        return None
    if command.since is not None and command.action != "subscribe":
        hub.send(client, "error", {"detail": "since goes with subscribe only"})
        return None
    if command.since is not None and Topic.TRADING_SIGNALS not in command.topics:
        detail = "since applies to trading_signals only: name it in topics"
        hub.send(client, "error", {"detail": detail})
        return None
    return command


def _handle(
    hub: WSHub, client: WSClient, command: WSCommand, status: Callable[[], object]
) -> datetime | None:
    """Carry out a valid command; returns `since` if a trading_signals catch-up should run."""
    if command.action == "ping":
        hub.send(client, "pong", {})
        return None
    symbols = _symbols(command)
    if command.action == "unsubscribe":
        hub.unsubscribe(client, command.topics)
        hub.send(client, "unsubscribed", {"topics": sorted(command.topics)})
        return None
    reply: dict[str, object] = {"topics": sorted(command.topics), "symbols": sorted(symbols or [])}
    if command.since is not None:
        reply["since"] = command.since.isoformat()
    hub.send(client, "subscribed", reply)
    if command.since is None:
        hub.subscribe(client, command.topics, symbols)
    else:  # trading_signals goes live once caught up (WSHub.replay), the rest at once
        hub.unsubscribe(client, [Topic.TRADING_SIGNALS])
        others = [t for t in command.topics if t is not Topic.TRADING_SIGNALS]
        hub.subscribe(client, others, symbols)
    if Topic.SYSTEM_STATUS in command.topics:
        hub.send(client, Topic.SYSTEM_STATUS.value, status())
    return command.since


def _symbols(command: WSCommand) -> SymbolFilter:
    return frozenset(command.symbols) or None
