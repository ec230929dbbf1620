"""What the research routes answer."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.council import LLMCallOut
from models.enums import RunStatus


class ReportOut(BaseModel):
    """One analyst's note on one symbol: stance, confidence, evidence, risks."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    run_id: int
    symbol: str
    as_of: datetime
    analyst: str
    summary: str
    findings: dict[str, Any]
    llm_call_id: int | None


class ReportDetailOut(ReportOut):
    llm_call: LLMCallOut | None


class RunResearchOut(BaseModel):
    run_id: int
    as_of: datetime
    status: RunStatus
    data_hash: str | None
    reports: list[ReportOut]


class RunLineOut(BaseModel):
    """A council run in the calendar: when, how it ended, what it cost, how many notes."""

    run_id: int
    as_of: datetime
    status: RunStatus
    cost_usd: Decimal
    reports: int


class ResearchWeekOut(BaseModel):
    """One ISO week of the calendar and the council runs of that week, newest first."""

    week: str = Field(description="ISO week of the day the runs decided on, e.g. 2019-W23.")
    starts: date = Field(description="The week's Monday.")
    runs: list[RunLineOut]


class PromptOut(BaseModel):
    """The exact messages the research stage sends an analyst, and the answer's schema."""

    as_of: datetime
    analyst: str
    model: str
    data_hash: str = Field(description="sha256 of the bars the snapshot in the prompt used.")
    prompt_hash: str = Field(description="sha256 of the messages, as `llm_calls` records it.")
    messages: list[dict[str, Any]]
    response_schema: dict[str, Any]


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"report_id": 1}]})

    report_id: int = Field(ge=1, le=2**53)


class FigureOut(BaseModel):
    text: str
    value: float
    percent: bool
    matches: list[str] = Field(description="Snapshot metrics it agrees with; empty: unsupported.")


class VerifyOut(BaseModel):
    """Whether a report reads the data its run saw: the data hash recomputed, and every
    figure it quotes found in the point-in-time snapshot."""

    report_id: int
    symbol: str
    data_hash_recorded: str | None
    data_hash_recomputed: str
    data_unchanged: bool
    figures: list[FigureOut]
    unsupported: list[str]
    verified: bool
