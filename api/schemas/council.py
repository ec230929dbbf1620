"""What the council routes answer: runs, decisions and the chain behind each decision."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.enums import DecisionAction, DecisionStatus, RunStatus, Side
from models.text import StorableStr
from tasks.council.causes import Answer, Cause, StageState


class _Rows(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CouncilRunOut(_Rows):
    id: int
    as_of: datetime
    status: RunStatus
    detail: str | None
    budget_usd: Decimal | None
    cost_usd: Decimal
    data_hash: str | None
    flow_run_id: str | None
    job_id: int | None
    params: dict[str, Any] | None
    started_at: datetime | None
    finished_at: datetime | None


class DecisionOut(_Rows):
    id: int
    symbol: str
    action: DecisionAction
    target_weight: Decimal
    conviction: Decimal
    rationale: str
    status: DecisionStatus
    approved_by: str | None
    note: str | None
    pitch_id: int | None
    votes: dict[str, Any] | None


class PitchOut(_Rows):
    id: int
    pm: str
    symbol: str
    side: Side
    conviction: Decimal
    thesis: str
    entry_price: Decimal | None
    take_profit: Decimal | None
    stop_loss: Decimal | None
    horizon_days: int | None
    dropped_reason: str | None
    llm_call_id: int | None


class ReviewOut(_Rows):
    id: int
    reviewer: str
    label: str | None
    position: int | None
    score: Decimal
    critique: str
    llm_call_id: int | None


class ResearchNoteOut(_Rows):
    id: int
    symbol: str
    analyst: str
    summary: str
    llm_call_id: int | None


class LLMCallOut(_Rows):
    id: int
    stage: str
    member: str
    model: str
    provider: str
    status: str
    cache_hit: bool
    prompt_hash: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: int
    attempts: int


class IntentOut(_Rows):
    id: int
    symbol: str
    side: Side
    qty: Decimal
    status: str
    reject_reason: str | None
    risk_checks: dict[str, Any]


class OrderLineOut(_Rows):
    id: int
    client_order_id: str
    broker_order_id: str | None
    leg: str
    side: Side
    qty: Decimal
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    filled_qty: Decimal
    avg_fill_price: Decimal | None
    reject_reason: str | None


class FillLineOut(_Rows):
    id: int
    order_id: int
    qty: Decimal
    price: Decimal
    fee: Decimal
    ts: datetime


class ExecutionOut(BaseModel):
    account: str
    intent: IntentOut
    orders: list[OrderLineOut]
    fills: list[FillLineOut]


class DecisionChainOut(BaseModel):
    """A decision and everything behind it, down to the prompts' calls and the fills."""

    decision: DecisionOut
    pitch: PitchOut | None
    votes: list[ReviewOut]
    research: list[ResearchNoteOut]
    llm_calls: list[LLMCallOut]
    execution: list[ExecutionOut]


class MemberAnswerOut(_Rows):
    """How one member answered in a stage, from its stored LLM call."""

    member: str
    model: str
    answer: Answer = Field(description="repaired: valid after one repair round.")
    cause: Cause | None = Field(description="Why it abstained; null if it answered.")
    error: str | None = Field(description="The error as stored (for `not asked`: the run's end).")
    call_id: int | None = Field(description="Its `llm_calls` row; null if it was not asked.")
    cached: bool = Field(description="Answered from the response cache.")


class StageOut(_Rows):
    """One stage of the run: how it ended, what it passed on, and who answered how.

    The counts are null for approval and execution, which ask no model.
    """

    stage: str = Field(examples=["pitches"])
    state: StageState
    outcome: str = Field(examples=["0 of 2 pitches kept for review"])
    answered: int | None
    repaired: int | None
    abstained: int | None
    causes: dict[str, int] = Field(
        description="Abstentions by cause.", examples=[{"malformed JSON": 2, "rate limited": 1}]
    )
    members: list[MemberAnswerOut]
    notes: list[str] = Field(
        description="What the stage refused, each with its reason (dropped pitches, the "
        "chairman's refused calls, rejected decisions, refused trade intents)."
    )


class CouncilOut(BaseModel):
    """A council run, its job, and its decisions (each with its chain when asked for one)."""

    run: CouncilRunOut
    job_status: RunStatus | None = None
    stage: str | None = Field(None, description="The job's last stage (approval: waiting).")
    waiting_for_approval: bool = False
    decisions: list[DecisionOut]
    chains: list[DecisionChainOut] = Field(default_factory=list)
    stages: list[StageOut] = Field(
        default_factory=list,
        description="research, pitches, review, chairman, approval, execution, in that order.",
    )
    why_no_decision: list[str] = Field(
        default_factory=list,
        description="Empty when the run has decisions; else how it ended and each model "
        "stage up to the one that passed nothing on, with its counts and causes.",
    )


class CostLineOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    stage: str
    member: str
    model: str
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    max_prompt_tokens: int = Field(description="The largest prompt of one call.")


class StageCostOut(BaseModel):
    """One stage's calls and tokens (its repair rounds included in each call's tokens)."""

    stage: str
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    max_prompt_tokens: int = Field(description="The largest prompt of one call.")
    cost_usd: Decimal


class CostsOut(BaseModel):
    run_id: int
    budget_usd: Decimal | None
    cost_usd: Decimal
    prompt_tokens: int
    completion_tokens: int
    stages: list[StageCostOut]
    lines: list[CostLineOut]


class ApprovalIn(BaseModel):
    """Approve every proposed decision of the run except those in `reject`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"reject": [12], "note": "too hot"}]}
    )

    reject: list[int] = Field(default_factory=list, max_length=100)
    note: StorableStr | None = Field(None, max_length=2000)


class ApprovalOut(BaseModel):
    run_id: int
    flow_run_id: str
    approver: str
    approve: list[int]
    reject: list[int]
