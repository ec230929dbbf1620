"""Orders, fills, round-trip trades, and the intents waiting for a trader's approval.

All read our books (what the execution stage recorded), not the broker, so
they answer with the broker down. Each list is newest first and paged;
`account=` must name a configured account (or one with books): 404 if not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.after_effect import off_the_loop, record_after_effect
from api.auth import Principal, Trader
from api.deps import ReadSession, RuntimeDep
from api.pagination import Page, PageDep
from api.schemas.trading import (
    AccountFilter,
    FillOut,
    OrderOut,
    OrdersInclude,
    OrdersPage,
    PendingIntentOut,
    RefusedIntentOut,
    SymbolFilter,
    TradeOut,
    paging,
)
from db.queries.audit import record_event
from db.queries.trading import (
    list_fills,
    list_orders,
    list_pending_intents,
    list_refused_intents,
    list_trades,
)
from models.enums import OrderStatus
from models.intents import IntentOutcome
from tasks.execution.manual import execute_pending

router = APIRouter(prefix="/api", tags=["trading"])


@router.get("/orders")
def get_orders(
    session: ReadSession,
    page: PageDep,
    account: AccountFilter = None,
    symbol: SymbolFilter = None,
    status: Annotated[
        list[OrderStatus] | None,
        Query(description="Any of these order statuses (repeat the key); not refused intents."),
    ] = None,
    include: Annotated[
        OrdersInclude | None,
        Query(description="refused: also the trade intents refused by a check or the broker."),
    ] = None,
) -> OrdersPage:
    """Orders newest first by creation (`since`/`until` on it), bracket exits as their own
    rows with `parent_id`; each with its intent, the council decision behind that intent,
    and for a refused order the reason. A pre-trade check's refusal never becomes an order:
    `include=refused` adds those intents (and the broker's refusals) as `refused`, a page of
    its own with the failed check, its reason and the whole checks record."""
    rows = list_orders(session, paging(page), account=account, symbol=symbol, status=status)
    orders = Page.of([OrderOut.of(row) for row in rows], page)
    refused = None
    if include is OrdersInclude.REFUSED:
        lines = list_refused_intents(session, paging(page), account=account, symbol=symbol)
        refused = Page.of([RefusedIntentOut.of(line) for line in lines], page)
    return OrdersPage(**dict(orders), refused=refused)


@router.get("/fills")
def get_fills(
    session: ReadSession,
    page: PageDep,
    account: AccountFilter = None,
    symbol: SymbolFilter = None,
) -> Page[FillOut]:
    """Executions newest first by their time (`since`/`until` on it), with the order's
    symbol, side and account."""
    rows = list_fills(session, paging(page), account=account, symbol=symbol)
    return Page.of([FillOut.of(row) for row in rows], page)


@router.get("/trades")
def get_trades(
    session: ReadSession,
    page: PageDep,
    account: AccountFilter = None,
    symbol: SymbolFilter = None,
    is_open: Annotated[
        bool | None,
        Query(alias="open", description="true: only open round trips; false: only closed."),
    ] = None,
) -> Page[TradeOut]:
    """Round trips newest first by their latest move (the exit, else the entry; `since`/`until`
    on the same instant), with realised P&L after fees once closed."""
    rows = list_trades(session, paging(page), account=account, symbol=symbol, is_open=is_open)
    return Page.of([TradeOut.of(row) for row in rows], page)


@router.get("/trades/pending")
def get_pending_trades(
    session: ReadSession,
    page: PageDep,
    account: AccountFilter = None,
    symbol: SymbolFilter = None,
) -> Page[PendingIntentOut]:
    """Trade intents waiting for approval, newest first (`since`/`until` on their creation),
    with the pre-trade checks they passed and where they came from."""
    rows = list_pending_intents(session, paging(page), account=account, symbol=symbol)
    return Page.of([PendingIntentOut.of(row) for row in rows], page)


class ExecuteIn(BaseModel):
    """Intents waiting in `/api/trades/pending` to approve and send."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"intent_ids": [41, 42]}]}
    )

    intent_ids: list[Annotated[int, Field(ge=1, le=2**53)]] = Field(min_length=1, max_length=50)


@router.post("/trades/execute")
async def execute_trades(
    body: ExecuteIn, caller: Trader, runtime: RuntimeDep
) -> list[IntentOutcome]:
    """Approve waiting intents and send them: each is checked again first (the account and the
    market moved since it was asked for), and one that now fails stays unsent,
    `risk_rejected` with the reason. 404 for an unknown id, 409 for one not waiting, before
    anything is sent. Sent at most once, like the council's orders."""
    outcomes = await off_the_loop(
        lambda: execute_pending(runtime.sessions, runtime.settings, body.intent_ids)
    )
    await record_after_effect(
        runtime.sessions,
        lambda session: _audit_execution(session, caller, outcomes),
        what="trade.approved",
        intents=[o.intent_id for o in outcomes],
    )
    return outcomes


def _audit_execution(session: Session, caller: Principal, outcomes: list[IntentOutcome]) -> None:
    for outcome in outcomes:
        record_event(
            session,
            **caller.audit(),
            event="trade.approved",
            entity_type="trade_intent",
            entity_id=outcome.intent_id,
            before={"status": "pending_approval"},
            after={"status": outcome.status, "order_status": outcome.order_status},
            reason=outcome.reason,
        )
