"""The `<council-context>` payload as the offline analyst reads it: typed, validated, or refused.

`services.llm.context` owns the block's wire format; this module owns what
the offline analyst accepts from it. Everything is validated into the same
pydantic schemas the stages use (a `MarketSnapshot`, `ResearchPack`s,
`PitchProposal`s), so the offline answers are computed from checked data, and
a missing or malformed block is an `OfflineContextError` that names the
problem: the analyst never fills a gap with invented numbers.

Keys the analyst does not read are ignored (a prompt may carry more).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any, Self

from litellm.llms.custom_llm import CustomLLMError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.errors import LLMError
from models.llm_outputs import PitchLabel, PitchProposal, ResearchPack
from models.snapshot import MarketSnapshot
from services.llm.context import CLOSE, OPEN, extract_context


class OfflineAnalystError(LLMError, CustomLLMError):
    """The offline analyst cannot answer this request.

    Also a litellm `CustomLLMError`, so litellm maps `status_code` to its
    usual exceptions: 400 surfaces as `litellm.BadRequestError`, 404 as
    `litellm.NotFoundError`.
    """

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(self.status, f"offline analyst: {message}")  # type: ignore[no-untyped-call]


class OfflineContextError(OfflineAnalystError):
    """The prompt has no usable `<council-context>` block, so there is nothing to compute from."""


class UnknownOfflineModelError(OfflineAnalystError):
    """An `offline/...` model name the offline analyst does not serve."""

    status = 404


class Stage(StrEnum):
    RESEARCH = "research"
    SYNTHESIS = "synthesis"  # research done in shards, combined
    PITCH = "pitch"
    REVIEW = "review"
    CHAIRMAN = "chairman"


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class MemberResearch(_Payload):
    member: str
    pack: ResearchPack


class LabelledPitch(_Payload):
    label: PitchLabel
    pitch: PitchProposal


class RankedPitch(_Payload):
    """A pitch's place in the peer ranking: mean review score in [0, 1] over `reviews` reviews."""

    label: PitchLabel
    score: Decimal = Field(ge=0, le=1)
    reviews: int = Field(ge=0)


class CouncilContext(_Payload):
    """What one council prompt gives the offline analyst to compute from."""

    stage: Stage
    member: str = ""
    persona: str | None = None
    snapshot: MarketSnapshot
    research: list[MemberResearch] = Field(default_factory=list)
    pitches: list[LabelledPitch] = Field(default_factory=list)
    ranking: list[RankedPitch] = Field(default_factory=list)
    max_positions: int | None = Field(None, ge=0)
    max_weight: Decimal | None = Field(None, gt=0, le=1)

    @model_validator(mode="after")
    def _labels_are_unique(self) -> Self:
        labels = [p.label for p in self.pitches]
        if len(set(labels)) != len(labels):
            raise ValueError(f"pitch labels repeat: {sorted(labels)}")
        return self


def read_council_context(messages: list[Any]) -> CouncilContext:
    """The context of the last user message, validated; `OfflineContextError` if there is none."""
    text = _last_user_text(messages)
    payload = extract_context(text)
    if payload is None:
        raise OfflineContextError(
            f"the last user message has no parsable {OPEN}...{CLOSE} JSON block; "
            "the offline analyst computes only from the data given there"
        )
    try:
        return CouncilContext.model_validate(payload)
    except ValidationError as exc:
        raise OfflineContextError(f"invalid {OPEN} block: {exc}") from exc


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    raise OfflineContextError("no user message in the prompt")


def _text_of(content: object) -> str:
    """Plain string content, or the text parts of OpenAI-style content parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""
