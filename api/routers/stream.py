"""Server-sent price stream: a snapshot, then coalesced changes, heartbeats and retry hints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from api.auth import StreamViewer
from api.deps import RuntimeDep

router = APIRouter(prefix="/api/stream", tags=["stream"])


@router.get("/prices", response_class=EventSourceResponse)
async def stream_prices(
    runtime: RuntimeDep,
    _caller: StreamViewer,
    symbols: Annotated[
        str | None, Query(description="Comma-separated symbols; all when absent.", max_length=4000)
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """`snapshot` on connect (and on resume with Last-Event-ID), then `prices` with what changed.

    Resuming always starts from a fresh snapshot: prices are state, not a log,
    so replaying missed intermediate prices would only delay the current ones.
    """
    wanted = {s.strip().upper() for s in symbols.split(",") if s.strip()} if symbols else None
    del last_event_id  # accepted for clients that send it; a resume is a new snapshot
    return EventSourceResponse(
        runtime.hub.stream(wanted),
        ping=runtime.settings.sse_heartbeat_s,
    )
