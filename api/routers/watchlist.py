"""The caller's watchlist, with live prices.

A watchlist belongs to the token's user; the anonymous local reader has
none (an empty list). Adding and removing need a trader token, and each is
recorded in the audit log in the same transaction as the change.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.auth import Principal, Trader, Viewer
from api.deps import ReadSession, RuntimeDep, WriteSession
from api.errors import problem_responses
from db.queries.audit import record_event
from db.queries.tokens import ensure_user
from db.queries.watchlist import add_to_watchlist, remove_from_watchlist, watchlist
from models.errors import InvalidInputError
from models.market import Symbol, WatchlistItem
from models.market_data import PriceSnapshot
from models.text import StorableStr
from realtime.price_cache import PriceCache

router = APIRouter(prefix="/api/watchlist", tags=["watchlist"])


class WatchlistIn(BaseModel):
    """A symbol to follow; it must be a known instrument."""

    model_config = ConfigDict(extra="forbid")

    symbol: Symbol
    note: StorableStr | None = Field(None, max_length=500)


class WatchlistItemOut(BaseModel):
    """A followed symbol, with its live quote (price, day change) when the stream has one."""

    symbol: str
    note: str | None
    added_at: datetime
    quote: PriceSnapshot | None = Field(description="null: the price stream has not seen it.")


EXAMPLES = {
    "plain": {"summary": "Follow a symbol", "value": {"symbol": "AAPL"}},
    "note": {
        "summary": "With a note",
        "value": {"symbol": "NVDA", "note": "watch the earnings gap"},
    },
}


@router.get("")
def get_watchlist(
    principal: Viewer, session: ReadSession, runtime: RuntimeDep
) -> list[WatchlistItemOut]:
    """The caller's symbols in the order they were added, each with the live price and the
    change since the day's open when the price stream has them. Not paged: one user's list."""
    if principal.token_id is None:  # the anonymous local reader: no user, no list
        return []
    user_id = ensure_user(session, principal.actor).id
    return [_out(item, runtime.cache) for item in watchlist(session, user_id)]


@router.post("", status_code=201, responses=problem_responses(409))
def add_symbol(
    principal: Trader,
    session: WriteSession,
    runtime: RuntimeDep,
    body: Annotated[WatchlistIn, Body(openapi_examples=EXAMPLES)],
) -> WatchlistItemOut:
    """Follow a symbol. 422 (`body.symbol`) for a symbol with no instrument; 409 if it is on
    the list already."""
    user_id = ensure_user(session, principal.actor).id
    try:
        item = add_to_watchlist(session, user_id, body.symbol, body.note)
    except InvalidInputError as exc:  # the query names the field; here it is the body's
        raise InvalidInputError(f"body.{exc.field}", exc.message) from exc
    _audit(session, principal, "watchlist.added", item, after=_fields(item))
    return _out(item, runtime.cache)


@router.delete("/{symbol}", status_code=204)
def remove_symbol(
    principal: Trader,
    session: WriteSession,
    symbol: Annotated[Symbol, Path(description="The ticker; case does not matter.")],
) -> None:
    """Stop following a symbol; 404 if it is not on the caller's list."""
    user_id = ensure_user(session, principal.actor).id
    item = remove_from_watchlist(session, user_id, symbol)
    _audit(session, principal, "watchlist.removed", item, before=_fields(item))


def _out(item: WatchlistItem, cache: PriceCache) -> WatchlistItemOut:
    return WatchlistItemOut(
        symbol=item.symbol, note=item.note, added_at=item.created_at, quote=cache.get(item.symbol)
    )


def _fields(item: WatchlistItem) -> dict[str, str | None]:
    return {"symbol": item.symbol, "note": item.note}


def _audit(
    session: Session,
    principal: Principal,
    event: str,
    item: WatchlistItem,
    *,
    before: dict[str, str | None] | None = None,
    after: dict[str, str | None] | None = None,
) -> None:
    record_event(
        session,
        **principal.audit(),
        event=event,
        entity_type="watchlist",
        entity_id=item.id,
        before=before,
        after=after,
    )
