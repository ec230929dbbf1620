"""Recent signals, newest first, from the signals table.

`since` here and in the WebSocket `trading_signals` subscription (api/routers/ws.py) is
the same `Instant` and the same filter (`ts >= since`, `db.queries.signals`), so a client
can page with one and catch up with the other and see the same rows.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime

from api.deps import RuntimeDep
from db.queries.signals import MAX_LIST, recent_signals
from models.market import Symbol
from models.strategy import SignalOut
from realtime.patterns.config import SignalKind

router = APIRouter(prefix="/api/signals", tags=["signals"])


def _in_utc(value: datetime) -> datetime:
    """The instant in UTC; one that has no UTC representation (year 1 at +01:00) is invalid."""
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant is out of range once converted to UTC") from exc


Instant = Annotated[AwareDatetime, AfterValidator(_in_utc)]


@router.get("")
async def list_signals(
    runtime: RuntimeDep,
    symbol: Annotated[Symbol | None, Query(description="A ticker; case does not matter.")] = None,
    kind: SignalKind | None = None,
    since: Annotated[
        Instant | None,
        Query(description="Only signals at or after this instant (ISO 8601, with offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> list[SignalOut]:
    """Signals matching every filter given. Written in batches, so the newest may lag by
    `SIGNAL_FLUSH_MS`; the WebSocket topic `trading_signals` has them at once (subscribe
    with `since` to get the stored ones first, then the live ones)."""

    def read() -> list[SignalOut]:
        with runtime.read_sessions() as session:
            rows = recent_signals(
                session,
                symbol=symbol,
                kind=kind.value if kind else None,
                since=since,
                limit=limit,
            )
            return [SignalOut.model_validate(row) for row in rows]

    return await asyncio.to_thread(read)
