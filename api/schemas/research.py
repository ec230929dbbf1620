"""What the research routes answer."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from api.schemas.council import LLMCallOut
from models.enums import ReportVerdict, RunStatus
from models.jobs import JobOut
from models.text import StorableStr

NOTE_MAX = 2000
"""A verdict's note: a few paragraphs at most; the evidence lives in the report."""


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


class VerdictOut(BaseModel):
    """A person's verdict on a report: who (the token's user), when, which way, and why."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    report_id: int
    verdict: ReportVerdict
    note: str | None
    actor: str
    created_at: datetime


class ReportDetailOut(ReportOut):
    llm_call: LLMCallOut | None
    verdicts: list[VerdictOut] = Field(description="People's verdicts on it, oldest first.")


class RunResearchOut(BaseModel):
    run_id: int
    as_of: datetime
    status: RunStatus
    data_hash: str | None
    reports: list[ReportOut]


class ResearchJobOut(BaseModel):
    """A research (or council) job and the research of the council run it sat."""

    job: JobOut
    research: RunResearchOut | None = Field(
        description="null until the job's flow has opened its council run."
    )


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
    shard: int = Field(description="Which of the analyst's research calls this is (from 1).")
    shards: int = Field(description="How many calls the analyst's research takes.")
    symbols: list[str] = Field(description="The symbols this call studies.")
    screened: int = Field(description="Symbols the screen chose for the council to study.")


class VerifyIn(BaseModel):
    """A report to check; with `verdict`, also a person's verdict to record on it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"report_id": 1},
                {"report_id": 1, "verdict": "disputed", "note": "the 5d return is AAPL's"},
            ]
        },
    )

    report_id: int = Field(ge=1, le=2**53)
    verdict: ReportVerdict | None = Field(
        None, description="Record a person's verdict (needs the trader role)."
    )
    note: StorableStr | None = Field(None, max_length=NOTE_MAX, description="Why; with a verdict.")

    @field_validator("note")
    @classmethod
    def _note_goes_with_a_verdict(cls, note: str | None, info: ValidationInfo) -> str | None:
        if note is not None and "verdict" in info.data and info.data["verdict"] is None:
            raise ValueError("a note goes with a verdict: add `verdict`")
        return note


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
    verdict: VerdictOut | None = Field(
        None, description="The person's verdict this request recorded; null if it gave none."
    )
