"""What each council stage must get back from a language model, as pydantic schemas.

A model's answer is parsed into one of these or it is not used: "nothing
invalid executes". The validators encode what a sane answer looks like, so a
malformed or incoherent one fails here and the stage can repair, retry or
record the failure. Prices here are proposals; deterministic code sizes and
places orders, never the model.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from models.enums import DecisionAction, Side
from models.market import Symbol
from models.text import storable

Probability = Annotated[Decimal, Field(ge=0, le=1, max_digits=7, decimal_places=6)]
PositivePrice = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=8)]
# Storable: a model's text is kept in the database, where NUL or a lone surrogate fails.
Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(storable),
]
Short = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(storable),
]
PitchLabel = Annotated[str, StringConstraints(pattern=r"^[A-Z]{1,2}$")]
"""Pitches are shown to reviewers as A, B, C...: reviewers never see who wrote them."""


class LLMOutput(BaseModel):
    """Strict about shape, forgiving about nothing: unknown keys are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Stance(StrEnum):
    BULLISH = "bullish"
    BEARISH = "bearish"
    NEUTRAL = "neutral"


class ResearchNote(LLMOutput):
    """An analyst's reading of one symbol from the data it was given."""

    symbol: Symbol
    stance: Stance
    confidence: Probability
    summary: Text
    evidence: list[Short] = Field(min_length=1, max_length=12)
    risks: list[Short] = Field(default_factory=list, max_length=12)


class SectorView(LLMOutput):
    sector: Short
    stance: Stance
    reason: Short


class ResearchPack(LLMOutput):
    """An analyst's research for the run: the regime, sector views, notes per symbol, risks."""

    regime: Short
    sector_views: list[SectorView] = Field(default_factory=list, max_length=20)
    notes: list[ResearchNote] = Field(min_length=1, max_length=60)
    risks: list[Short] = Field(default_factory=list, max_length=12)

    @model_validator(mode="after")
    def _one_note_per_symbol(self) -> Self:
        symbols = [n.symbol for n in self.notes]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"more than one note for a symbol: {sorted(symbols)}")
        return self


class PitchProposal(LLMOutput):
    """A portfolio manager's trade idea with its bracket.

    Prices are optional (the sizing step can derive them from volatility), but
    those given must form a coherent bracket: for a buy, stop < entry < target;
    for a sell, target < entry < stop.
    """

    symbol: Symbol
    side: Side
    conviction: Probability
    thesis: Text
    entry_price: PositivePrice | None = None
    take_profit: PositivePrice | None = None
    stop_loss: PositivePrice | None = None
    horizon_days: int = Field(ge=1, le=90)

    @model_validator(mode="after")
    def _bracket_is_coherent(self) -> Self:
        levels = [
            ("stop_loss", self.stop_loss),
            ("entry_price", self.entry_price),
            ("take_profit", self.take_profit),
        ]
        if self.side is Side.SELL:
            levels.reverse()
        given = [(name, price) for name, price in levels if price is not None]
        for (low_name, low), (high_name, high) in pairwise(given):
            if not low < high:
                raise ValueError(
                    f"{self.side} bracket needs {low_name} < {high_name}, got {low} >= {high}"
                )
        return self


class PitchBook(LLMOutput):
    """A portfolio manager's pitches for the run (possibly none: no idea is a valid answer)."""

    pitches: list[PitchProposal] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _one_pitch_per_symbol(self) -> Self:
        symbols = [p.symbol for p in self.pitches]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"more than one pitch for a symbol: {sorted(symbols)}")
        return self


class PeerReviewOutput(LLMOutput):
    """One reviewer's anonymous verdict on one pitch."""

    pitch: PitchLabel
    score: Probability
    critique: Text
    flaws: list[Short] = Field(default_factory=list, max_length=10)


class PeerReviewBatch(LLMOutput):
    """A reviewer's verdicts on the pitches it was shown, one per pitch."""

    reviews: list[PeerReviewOutput] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_review_per_pitch(self) -> Self:
        labels = [r.pitch for r in self.reviews]
        if len(set(labels)) != len(labels):
            raise ValueError(f"pitches reviewed more than once: {sorted(labels)}")
        return self


class ChairmanCall(LLMOutput):
    """The chairman's call on one symbol. `target_weight` is a fraction of equity."""

    symbol: Symbol
    action: DecisionAction
    conviction: Probability
    target_weight: Annotated[Decimal, Field(ge=0, le=1, max_digits=7, decimal_places=6)]
    rationale: Text
    pitch: PitchLabel | None = None

    @model_validator(mode="after")
    def _hold_has_no_weight(self) -> Self:
        if self.action is DecisionAction.HOLD and self.target_weight != 0:
            raise ValueError("a hold must have target_weight 0")
        if self.action is not DecisionAction.HOLD and self.target_weight == 0:
            raise ValueError(f"a {self.action} needs a positive target_weight")
        return self


class ChairmanVerdict(LLMOutput):
    """The chairman's decisions for a run: at most one per symbol, weights summing to <= 1."""

    calls: list[ChairmanCall] = Field(max_length=50)
    summary: Text

    @model_validator(mode="after")
    def _coherent_book(self) -> Self:
        symbols = [c.symbol for c in self.calls]
        if len(set(symbols)) != len(symbols):
            raise ValueError(f"more than one call for a symbol: {sorted(symbols)}")
        total = sum((c.target_weight for c in self.calls), Decimal(0))
        if total > 1:
            raise ValueError(f"target weights sum to {total}, above 1 (no leverage)")
        return self


Cents = Annotated[Decimal, Field(gt=0, le=10_000_000, max_digits=10, decimal_places=2)]


class ChatTrade(LLMOutput):
    """A trade the chat assistant proposes. Deterministic code checks it; it may never run.

    Bounded as a trade a person asks for by hand (`models.intents.ManualTrade`:
    whole shares up to a million, exits in cents, both exits or neither), so a
    proposal the checks could not even take fails here, where the gateway asks
    the model to repair it, and not half-way through acting on the answer.
    """

    symbol: Symbol
    side: Side
    qty: int = Field(ge=1, le=1_000_000, description="Whole shares.")
    take_profit: Cents | None = None
    stop_loss: Cents | None = None
    reason: Short

    @model_validator(mode="after")
    def _both_exits_or_neither(self) -> Self:
        if (self.take_profit is None) != (self.stop_loss is None):
            raise ValueError("a bracket needs both take_profit and stop_loss, or neither")
        return self


class WatchlistChange(LLMOutput):
    action: Literal["add", "remove"]
    symbol: Symbol
    note: Short | None = None


class ChatAnswer(LLMOutput):
    """The assistant's answer: words for the user, and what it proposes to do."""

    message: Text
    trades: list[ChatTrade] = Field(default_factory=list, max_length=10)
    watchlist_changes: list[WatchlistChange] = Field(default_factory=list, max_length=20)
