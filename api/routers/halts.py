"""The kill switch: halt and resume trading (admin), and its state.

The switch is the append-only log of db/queries/halts.py: every flip is a
row (who, when, why) and the newest row of a scope is its state. A halt on
all accounts stops each of them whatever its own switch says, so resuming
one account under a global halt leaves it halted (the status shows why).
The execution stage reads the switch before every order.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.auth import Admin, Principal
from api.deps import ReadSession, SettingsDep, WriteSession
from api.schemas.trading import AccountTradingOut, HaltOut
from db.queries import halts
from db.queries.audit import record_event
from models.errors import InvalidInputError
from models.text import StorableStr
from models.trading import TradingHalt
from services.settings import Settings

router = APIRouter(prefix="/api/trading", tags=["trading"])

AccountField = Field(
    None, min_length=1, max_length=100, description="One configured account; omit for all."
)


class HaltIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str | None = AccountField
    reason: StorableStr = Field(
        min_length=1, max_length=1000, description="Shown with every order held."
    )


class ResumeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account: str | None = AccountField


class TradingStatusOut(BaseModel):
    """The global switch and, for each configured account, whether it may trade."""

    all_accounts: HaltOut | None = Field(
        description="The newest flip of the switch for every account; null: never touched."
    )
    accounts: list[AccountTradingOut]


HALT_EXAMPLES = {
    "all": {"summary": "Stop every account", "value": {"reason": "market data looks wrong"}},
    "one": {
        "summary": "Stop one account",
        "value": {"account": "paper", "reason": "reconciling positions"},
    },
}
RESUME_EXAMPLES = {
    "all": {"summary": "Lift the halt on every account", "value": {}},
    "one": {"summary": "Resume one account", "value": {"account": "paper"}},
}


@router.get("/status")
def get_status(session: ReadSession, settings: SettingsDep) -> TradingStatusOut:
    """Per configured account: halted or not, and by whom, when and why."""
    return _status(session, settings)


@router.post("/halt")
def halt_trading(
    principal: Admin,
    session: WriteSession,
    settings: SettingsDep,
    body: Annotated[HaltIn, Body(openapi_examples=HALT_EXAMPLES)],
) -> TradingStatusOut:
    """Stop sending orders on one account, or on all, until resumed. Admin only. Answers the
    switch's state after the flip."""
    _flip(session, settings, principal, body.account, True, body.reason)
    return _status(session, settings)


@router.post("/resume")
def resume_trading(
    principal: Admin,
    session: WriteSession,
    settings: SettingsDep,
    body: Annotated[ResumeIn | None, Body(openapi_examples=RESUME_EXAMPLES)] = None,
) -> TradingStatusOut:
    """Allow orders again on one account, or lift the halt on all accounts. Admin only. An
    account resumed under a halt on all accounts stays halted: the answer shows it."""
    _flip(session, settings, principal, body.account if body else None, False, None)
    return _status(session, settings)


def _flip(
    session: Session,
    settings: Settings,
    principal: Principal,
    account: str | None,
    halted: bool,
    reason: str | None,
) -> None:
    if account is not None and account not in {a.name for a in settings.accounts}:
        known = ", ".join(a.name for a in settings.accounts)
        raise InvalidInputError("body.account", f"no account {account!r} (configured: {known})")
    before = halts.latest(session, account)
    row = halts.set_halt(session, account, halted, principal.actor, reason)
    record_event(
        session,
        **principal.audit(),
        event="trading.halted" if halted else "trading.resumed",
        entity_type="trading_halt",
        entity_id=account or "all",
        before=_state(before),
        after=_state(row),
    )


def _status(session: Session, settings: Settings) -> TradingStatusOut:
    every = halts.latest(session, halts.ALL)
    return TradingStatusOut(
        all_accounts=HaltOut.model_validate(every) if every is not None else None,
        accounts=[
            AccountTradingOut.of(a.name, every, halts.latest(session, a.name))
            for a in settings.accounts
        ],
    )


def _state(row: TradingHalt | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return HaltOut.model_validate(row).model_dump(mode="json")
