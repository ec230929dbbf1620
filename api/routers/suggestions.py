"""Recent suggestions of the strategy engine, newest first, from the suggestions table.

Written in batches (about a second behind); the WebSocket topic `suggestions` carries
each one as it is made.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from api.deps import RuntimeDep
from api.routers.signals import Instant
from db.queries.suggestions import MAX_LIST, recent_suggestions
from models.market import Symbol
from models.suggestions import SuggestionOut

router = APIRouter(prefix="/api/suggestions", tags=["suggestions"])


@router.get("")
async def list_suggestions(
    runtime: RuntimeDep,
    symbol: Annotated[Symbol | None, Query(description="A ticker; case does not matter.")] = None,
    direction: Literal["buy", "sell", "hold"] | None = None,
    since: Annotated[
        Instant | None,
        Query(description="Only suggestions as of this instant or later (ISO 8601, offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> list[SuggestionOut]:
    """Suggestions matching every filter given: direction, score, each input's share and
    what it said (model versions included), and `degraded` when made from fewer inputs."""

    def read() -> list[SuggestionOut]:
        with runtime.read_sessions() as session:
            rows = recent_suggestions(
                session, symbol=symbol, direction=direction, since=since, limit=limit
            )
            return [SuggestionOut.model_validate(row) for row in rows]

    return await asyncio.to_thread(read)
