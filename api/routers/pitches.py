"""PM pitches: the current week's with their reviews, generation jobs, and approving one.

Approving a pitch is a person taking the trade: it becomes a trade intent
checked like the council's (tasks/execution/manual.py), sent now or left
waiting in `/api/trades/pending`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Path
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.after_effect import off_the_loop, record_after_effect
from api.auth import LLMSpender, Principal, Trader
from api.deps import ReadSession, RuntimeDep
from api.job_start import start_job
from api.schemas.council import DecisionOut, PitchOut, ReviewOut
from db.queries import council as q
from db.queries.audit import record_event
from db.queries.jobs import latest_job
from models.accounts import AccountConfig
from models.base import utcnow
from models.council import Pitch
from models.enums import JobType, RunStatus
from models.errors import InvalidInputError, NotFoundError
from models.intents import IntentOutcome, ManualTrade
from models.jobs import JobOut, ResearchJob, ResearchParams
from models.text import StorableStr
from realtime.runtime import Runtime
from tasks.execution.manual import pitch_trade, place_manual_trades, trading_account

router = APIRouter(prefix="/api/pitches", tags=["pitches"])


class PitchWithReviewsOut(PitchOut):
    """A pitch, the anonymous reviews it got, and the chairman's decision on it, if any."""

    reviews: list[ReviewOut]
    mean_score: Decimal | None
    decision: DecisionOut | None


class CurrentPitchesOut(BaseModel):
    run_id: int
    as_of: str
    status: RunStatus
    pitches: list[PitchWithReviewsOut]


class PitchApprovalIn(BaseModel):
    """How much to trade: `qty` shares, or `weight` of the account's equity (default 5 %)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"weight": "0.05"}, {"qty": 10, "account": "paper"}]},
    )

    qty: int | None = Field(None, ge=1, le=1_000_000)
    weight: Decimal | None = Field(None, gt=0, le=1, max_digits=6, decimal_places=4)
    account: StorableStr | None = Field(None, max_length=100)
    execute: bool = Field(True, description="Send now (after the checks); false: queue it.")
    note: StorableStr | None = Field(None, max_length=2000)


@router.get("/current")
def current_pitches(session: ReadSession) -> CurrentPitchesOut:
    """The pitches of the newest council run that has any, dropped ones with their reason,
    each with its reviews (as the reviewer saw it: label and position) and decision."""
    run = q.latest_run_with_pitches(session)
    reviews = q.review_rows(session, run.id)
    decisions = {d.pitch_id: d for d in q.decision_rows(session, run.id) if d.pitch_id}
    out = []
    for pitch in q.pitch_rows(session, run.id):
        own = [r for r in reviews if r.pitch_id == pitch.id]
        scores = [Decimal(r.score) for r in own]
        decision = decisions.get(pitch.id)
        out.append(
            PitchWithReviewsOut(
                **PitchOut.model_validate(pitch).model_dump(),
                reviews=[ReviewOut.model_validate(r) for r in own],
                mean_score=sum(scores, Decimal(0)) / len(scores) if scores else None,
                decision=DecisionOut.model_validate(decision) if decision else None,
            )
        )
    return CurrentPitchesOut(
        run_id=run.id, as_of=run.as_of.isoformat(), status=run.status, pitches=out
    )


@router.post("/generate", status_code=202)
async def generate_pitches(
    caller: LLMSpender,
    runtime: RuntimeDep,
    body: Annotated[
        ResearchParams,
        Body(openapi_examples={"week": {"value": {"as_of": "2020-01-03"}}}),
    ],
) -> JobOut:
    """Start a pitches job: research, then the PMs' pitches, for `as_of` (research prompts
    asked before are answered from the response cache, at $0)."""
    job = ResearchJob(type=JobType.RESEARCH, params=body, stop_after="pitches")
    return await start_job(runtime, job, caller)


@router.get("/status")
def pitches_status(session: ReadSession) -> JobOut:
    """The newest pitches job and where it stands."""
    job = latest_job(session, JobType.RESEARCH, stop_after="pitches")
    if job is None:
        raise NotFoundError("no pitches job yet: POST /api/pitches/generate")
    return JobOut.model_validate(job)


@router.post("/{pitch_id}/approve")
async def approve_pitch(
    pitch_id: Annotated[int, Path(ge=1, le=2**53)],
    caller: Trader,
    runtime: RuntimeDep,
    body: Annotated[PitchApprovalIn, Body()] = PitchApprovalIn(),  # noqa: B008 (immutable)
) -> list[IntentOutcome]:
    """Take a pitch's trade: its side and bracket, sized by `qty` or `weight`, through the
    same pre-trade checks and exactly-once submit as the council's orders. 409 for a
    dropped pitch. Approving the same pitch again answers the first approval's outcome."""
    account = _account(runtime, body.account)
    trade = await asyncio.to_thread(_trade, runtime, pitch_id, body)
    outcomes = await off_the_loop(
        lambda: place_manual_trades(
            runtime.sessions,
            runtime.settings,
            [trade],
            source=f"pitch-{pitch_id}",
            execute=body.execute,
            account=account,
        )
    )
    await record_after_effect(
        runtime.sessions,
        lambda session: _audit(session, caller, pitch_id, body, outcomes),
        what="pitch.approved",
        pitch_id=pitch_id,
        intents=[o.intent_id for o in outcomes],
    )
    return outcomes


def _account(runtime: Runtime, name: str | None) -> AccountConfig:
    if name is not None and name not in {a.name for a in runtime.settings.accounts}:
        known = ", ".join(a.name for a in runtime.settings.accounts)
        raise InvalidInputError("body.account", f"no account {name!r} (configured: {known})")
    return trading_account(runtime.settings, name)


def _trade(runtime: Runtime, pitch_id: int, body: PitchApprovalIn) -> ManualTrade:
    account = _account(runtime, body.account)
    with runtime.read_sessions() as session:
        pitch = _pitch(session, pitch_id)
        qty = Decimal(body.qty) if body.qty is not None else None
        return pitch_trade(session, pitch, account, qty=qty, weight=body.weight, now=utcnow())


def _pitch(session: Session, pitch_id: int) -> Pitch:
    pitch = session.get(Pitch, pitch_id)
    if pitch is None:
        raise NotFoundError(f"no pitch {pitch_id}")
    return pitch


def _audit(
    session: Session,
    caller: Principal,
    pitch_id: int,
    body: PitchApprovalIn,
    outcomes: list[IntentOutcome],
) -> None:
    record_event(
        session,
        **caller.audit(),
        event="pitch.approved",
        entity_type="pitch",
        entity_id=pitch_id,
        after={
            "request": body.model_dump(mode="json"),
            "intents": [o.model_dump(mode="json") for o in outcomes],
        },
    )
