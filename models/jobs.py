"""What a job may be asked to do: one body per job type, validated before anything runs.

A job is a Prefect flow run. `POST /api/jobs` takes `{type, params}`; the
type picks the params model here (a discriminated union, so the OpenAPI page
lists each type's parameters and a bad one is a 422 naming the field).
Every type in `JobType` has its body here and its flow in flows/.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.backtest import BUILTIN_STRATEGIES, BacktestRequest
from models.days import DecisionDay
from models.enums import JobType, RunStatus
from models.market import Symbol
from models.sentiment import MAX_BACKFILL_STEPS, backfill_steps
from models.text import StorableStr

Stage = Literal["research", "pitches", "chairman"]
ModelName = Annotated[
    StorableStr,
    Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]*$"),
]
"""A litellm model name: `openai/gpt-4o-mini`, `ollama/llama3:8b`, `offline/analyst`."""


class CouncilParams(BaseModel):
    """The weekly council's parameters (flows/weekly_council.py), as a job may set them."""

    model_config = ConfigDict(extra="forbid")

    as_of: DecisionDay | None = Field(
        None,
        description="Decide at this day's close: a day the stored daily bars cover (else a "
        "422 with their range); default the latest stored day.",
    )
    universe: list[Symbol] | None = Field(
        None, min_length=1, max_length=500, description="Symbols; default every stored one."
    )
    models: list[ModelName] | None = Field(
        None, min_length=1, max_length=16, description="litellm models; default LLM_MODELS."
    )
    approval: Literal["manual", "auto"] = Field(
        "manual", description="manual: the run pauses until POST /api/council/{id}/approve."
    )
    budget_usd: float | None = Field(None, ge=0, le=10_000, description="LLM budget of the run.")
    max_positions: int = Field(5, ge=1, le=50)
    max_weight: float = Field(0.2, gt=0, le=1)
    min_reward_risk: float = Field(1.5, ge=0, le=100)
    execute: bool = Field(True, description="Send the approved decisions to every account.")


class ResearchParams(BaseModel):
    """A council sitting that stops after research (or after the pitches)."""

    model_config = ConfigDict(extra="forbid")

    as_of: DecisionDay | None = None
    universe: list[Symbol] | None = Field(None, min_length=1, max_length=500)
    models: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, min_length=1, max_length=16
    )
    budget_usd: float | None = Field(None, ge=0, le=10_000)


class CouncilJob(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"type": "council", "params": {"as_of": "2020-01-03"}}]},
    )

    type: Literal[JobType.COUNCIL]
    params: CouncilParams = Field(default_factory=CouncilParams)

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


class ResearchJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal[JobType.RESEARCH]
    params: ResearchParams = Field(default_factory=ResearchParams)
    stop_after: Literal["research", "pitches"] = Field(
        "research", description="research, or also the PMs' pitches (research is then cached)."
    )

    def flow_parameters(self) -> dict[str, Any]:
        given = self.params.model_dump(mode="json", exclude_none=True)
        return {**given, "approval": "auto", "stop_after": self.stop_after, "execute": False}


class CouncilBacktestParams(BaseModel):
    """The council backtest's parameters (flows/council_backtest.py), as a job may set them.

    `models` seats the standard roster on those models; a roster of one's own (the flow's
    `members`) is not taken here. A member is a `tasks.council.roster.Member`, which this
    vocabulary may not import, and a council job does not take one either: who sits in
    which role is the operator's configuration (LLM_MODELS, the models file, checked by
    `aitrader council roster`), not something a request names. The CLI and Prefect's UI
    can still pass `members` to the flow.
    """

    model_config = ConfigDict(extra="forbid")

    start: DecisionDay = Field(
        description="The first day a sitting may fall on: a day the stored daily bars cover."
    )
    end: DecisionDay = Field(
        description="The last day a sitting may fall on (after start), inside the stored bars."
    )
    universe: list[Symbol] | None = Field(
        None, min_length=1, max_length=500, description="Symbols; default every stored one."
    )
    models: list[ModelName] | None = Field(
        None, min_length=1, max_length=16, description="litellm models; default LLM_MODELS."
    )
    rebalance: Literal["weekly", "monthly"] = Field(
        "weekly", description="Sit on the last stored day of each whole week, or month."
    )
    budget_usd: float | None = Field(
        None, ge=0, le=10_000, description="LLM budget of the whole backtest, every sitting."
    )
    account: str | None = Field(
        None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Size and check orders as this configured account does; default the first.",
    )
    max_positions: int = Field(5, ge=1, le=50)
    max_weight: float = Field(0.2, gt=0, le=1)
    min_reward_risk: float = Field(1.5, ge=0, le=100)
    cutoff_policy: Literal["flag", "refuse"] | None = Field(
        None,
        description="A sitting before a member's training cutoff: flag it, or refuse to sit "
        "it; default COUNCIL_CUTOFF_POLICY.",
    )
    replay: bool = Field(
        False, description="Every answer from the LLM cache, no model asked, nothing spent."
    )
    weighting: bool | None = Field(
        None,
        description="Rank pitches by reviews weighted by each reviewer's skill so far; "
        "default COUNCIL_VOTE_WEIGHTING. Both tallies are reported either way.",
    )
    anonymise: bool = Field(
        False,
        description="Sit each day again with aliases for symbols and rescaled prices, and "
        "compare the two councils (a model that remembers does better only where it can see).",
    )

    @model_validator(mode="after")
    def _range(self) -> CouncilBacktestParams:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class CouncilBacktestJob(BaseModel):
    """Sit the council at every rebalance day of a past range and judge what it decided
    against buy-and-hold and momentum; its rows are read at `/api/council/backtests`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "council_backtest",
                    "params": {
                        "start": "2019-01-01",
                        "end": "2019-06-30",
                        "universe": ["AAPL", "MSFT", "XOM"],
                        "rebalance": "monthly",
                        "budget_usd": 5,
                    },
                }
            ]
        },
    )

    type: Literal[JobType.COUNCIL_BACKTEST]
    params: CouncilBacktestParams

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


class BacktestJob(BaseModel):
    """The backtest flow (flows/backtest.py). Over HTTP only the built-in strategies run:
    a `package.module:function` would import code a request names."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "type": "backtest",
                    "params": {
                        "strategy": "sma_cross",
                        "params": {"fast": 10, "slow": 50},
                        "symbols": ["AAPL", "MSFT"],
                        "start": "2016-01-01",
                        "end": "2019-12-31",
                    },
                }
            ]
        },
    )

    type: Literal[JobType.BACKTEST]
    params: BacktestRequest

    @field_validator("params")
    @classmethod
    def _builtin_only(cls, params: BacktestRequest) -> BacktestRequest:
        if params.strategy not in BUILTIN_STRATEGIES:
            raise ValueError(
                f"strategy {params.strategy!r}: over the API one of {', '.join(BUILTIN_STRATEGIES)}"
            )
        return params

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


Trainable = Literal["forecaster", "pattern_classifier"]
TRAINABLE: tuple[Trainable, ...] = ("forecaster", "pattern_classifier")


class TrainingParams(BaseModel):
    """The training flow's parameters (flows/training.py `training`)."""

    model_config = ConfigDict(extra="forbid")

    models: list[Trainable] = Field(
        default_factory=lambda: list(TRAINABLE),
        min_length=1,
        max_length=2,
        description="Which models to train, one after the other.",
    )
    symbols: list[Symbol] | None = Field(
        None, min_length=1, max_length=500, description="Default: every stored symbol."
    )
    start: date | None = Field(None, description="First bar day; default the first stored.")
    end: date | None = Field(
        None, description="Last bar day (known at its close); default the last stored."
    )
    window: int = Field(32, ge=8, le=60, description="Bars per input window (the engine keeps 60).")
    horizon: int = Field(5, ge=1, le=20, description="Bars ahead: forecast steps, label span.")
    epochs: int = Field(10, ge=1, le=200)
    folds: int = Field(3, ge=1, le=10, description="Walk-forward folds.")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    ab: bool = Field(
        False, description="Register as the challenger, scored beside the active version."
    )

    @field_validator("models")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each model at most once")
        return value

    @model_validator(mode="after")
    def _range(self) -> TrainingParams:
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class TrainingJob(BaseModel):
    """Train the forecaster and/or the pattern classifier; needs the `ml` extra (torch)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"type": "training", "params": {"models": ["forecaster"], "epochs": 5}}]
        },
    )

    type: Literal[JobType.TRAINING]
    params: TrainingParams = Field(default_factory=TrainingParams)

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


class PatternScanParams(BaseModel):
    """The pattern scan's parameters (flows/pattern_scan.py)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[Symbol] | None = Field(
        None, min_length=1, max_length=500, description="Default: every stored symbol."
    )
    start: date | None = Field(None, description="First bar day; default the first stored.")
    end: date | None = Field(None, description="Last bar day; default the last stored.")
    horizon: int = Field(5, ge=1, le=60, description="Bars after a signal its return is taken.")
    classify: bool = Field(True, description="Score each signal with the active classifier.")

    @model_validator(mode="after")
    def _range(self) -> PatternScanParams:
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class PatternScanJob(BaseModel):
    """Scan stored bars for the realtime engine's patterns; report what followed each."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"type": "pattern_scan", "params": {"symbols": ["AAPL"], "horizon": 5}}]
        },
    )

    type: Literal[JobType.PATTERN_SCAN]
    params: PatternScanParams = Field(default_factory=PatternScanParams)

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


class SuggestionParams(BaseModel):
    """The suggestion flow's parameters (flows/suggestion.py)."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[Symbol] | None = Field(
        None, min_length=1, max_length=500, description="Default: every stored symbol."
    )
    as_of: date | None = Field(
        None, description="Suggest at this day's close; default the last stored day."
    )
    recent_bars: int = Field(5, ge=1, le=60, description="How recent a signal still counts.")


class SuggestionJob(BaseModel):
    """Suggestions as of a close, scored as the realtime engine scores them; written once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"type": "suggestion", "params": {"symbols": ["AAPL", "MSFT"]}}]
        },
    )

    type: Literal[JobType.SUGGESTION]
    params: SuggestionParams = Field(default_factory=SuggestionParams)

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


class SentimentJobParams(BaseModel):
    """The sentiment analysis's parameters (flows/sentiment.py): live, or a backfill."""

    model_config = ConfigDict(extra="forbid")

    symbols: list[Symbol] | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Store these symbols' sentiment; default every symbol with news.",
    )
    start: date | None = Field(
        None,
        ge=date(1970, 1, 2),
        le=date(2999, 12, 30),
        description="Backfill from this day; unset: one live run as of now.",
    )
    end: date | None = Field(
        None, le=date(2999, 12, 30), description="Backfill to this day; default today."
    )
    step_hours: float = Field(
        24.0, ge=0.25, le=24 * 7, description="A backfill's stored figure every this many hours."
    )

    @model_validator(mode="after")
    def _range(self) -> SentimentJobParams:
        if self.end is not None and self.start is None:
            raise ValueError("end needs start: a backfill runs from start to end")
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"end {self.end} must not be before start {self.start}")
        if self.start:
            end = self.end or datetime.now(UTC).date()
            if end < self.start:
                raise ValueError(f"start {self.start} is after today: give an end too")
            steps = backfill_steps(self.start, end, self.step_hours)
            if steps > MAX_BACKFILL_STEPS:
                raise ValueError(
                    f"step_hours: {steps} steps from {self.start} to {end}, at most "
                    f"{MAX_BACKFILL_STEPS}: a longer step or a shorter range"
                )
        return self


class SentimentJob(BaseModel):
    """Score new news and store symbol sentiment; with `start`, backfill a date range."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"type": "sentiment", "params": {}},
                {"type": "sentiment", "params": {"start": "2024-01-02", "end": "2024-01-31"}},
            ]
        },
    )

    type: Literal[JobType.SENTIMENT]
    params: SentimentJobParams = Field(default_factory=SentimentJobParams)

    def flow_parameters(self) -> dict[str, Any]:
        return self.params.model_dump(mode="json", exclude_none=True)


JobRequest = Annotated[
    CouncilJob
    | ResearchJob
    | BacktestJob
    | TrainingJob
    | PatternScanJob
    | SuggestionJob
    | SentimentJob
    | CouncilBacktestJob,
    Field(discriminator="type"),
]

# The Prefect deployment each type runs under when a Prefect server is configured.
DEPLOYMENTS: dict[JobType, str] = {
    JobType.COUNCIL: "weekly-council/weekly-council",
    JobType.RESEARCH: "weekly-council/weekly-council",
    JobType.BACKTEST: "backtest/backtest",
    JobType.TRAINING: "training/training",
    JobType.PATTERN_SCAN: "pattern-scan/pattern-scan",
    JobType.SUGGESTION: "suggestion/suggestion",
    JobType.SENTIMENT: "sentiment-analysis/sentiment-analysis",
    JobType.COUNCIL_BACKTEST: "council-backtest/council-backtest",
}


class JobOut(BaseModel):
    """A job and where its flow run stands."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    status: RunStatus
    params: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    flow_run_id: str | None
    runner: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobUpdate(BaseModel):
    """A job's move, as `jobs:updates` carries it and the WebSocket topic `job_updates` shows
    it (`{"event": "job.updated", ...}`). Written by db/queries/jobs.py, the one owner of a
    job's transitions, and by nobody else."""

    model_config = ConfigDict(frozen=True)

    id: int
    type: str
    status: RunStatus
    stage: str | None = None
    error: str | None = Field(None, description="Why a failed or canceled job ended, in words.")
    flow_run_id: str | None = None
    council_run_id: int | None = None
    facts: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict, description="What the stage reported: counts, hashes, costs."
    )

    def message_data(self) -> dict[str, Any]:
        """The bus message's `data`: the fields flat, as dashboards read them."""
        data = self.model_dump(mode="json", exclude={"facts"})
        return {**self.facts, **data}
