"""The models file: which language models the council may call, what each costs and holds,
and which seat uses which (`LLM_MODELS_FILE`, YAML or JSON).

    models:
      - name: local-8b                 # what the roster calls it (default: `model`)
        model: openai/llama3.1-8b      # litellm's name: provider/model
        api_base: http://127.0.0.1:11434/v1
        api_key_env: OLLAMA_KEY        # the variable holding the key (none: no key)
        input_window: 8192             # tokens the prompt may use, answer included
        output_limit: 2048             # most tokens of one answer
        input_cost_per_token: 0        # USD; both prices or neither
        output_cost_per_token: 0
        timeout_s: 120
        tries: 3
        concurrency: 2                 # calls in flight to this model
        training_cutoff: 2023-12-31    # the last day its training data may know
    roster:
      analyst: local-8b                # every analyst seat
      pm: local-8b                     # every portfolio manager's pitch
      reviewer: local-8b               # every PM's peer review (default: its pm model)
      chairman: local-8b
      seats: {pm-contrarian: local-8b} # one seat by name, over the role's model

A field left out falls back to litellm's own facts for the model (window,
output limit, prices), then to the settings (`LLM_DEFAULT_WINDOW`). Prices
given here are registered with litellm, so a model it has never heard of can
run under a budget. Only the key's variable name is written here, never a key.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelName = str


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("", max_length=100, description="The roster's name for it; default: model.")
    model: str = Field(min_length=1, max_length=100, description="litellm's provider/model.")
    api_base: str | None = Field(None, description="An OpenAI-compatible server's base URL.")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Env variable holding the key."
    )
    input_window: int | None = Field(None, ge=256, description="Context window in tokens.")
    output_limit: int | None = Field(None, ge=16, description="Most tokens of one answer.")
    input_cost_per_token: Decimal | None = Field(None, ge=0)
    output_cost_per_token: Decimal | None = Field(None, ge=0)
    timeout_s: float | None = Field(None, gt=0, le=3600, description="Default: 60 s.")
    tries: int | None = Field(
        None, ge=1, le=10, description="Tries per request, the first included; default 4."
    )
    concurrency: int | None = Field(None, ge=1, le=64, description="Calls in flight, this model.")
    training_cutoff: date | None = Field(
        None,
        description="The last day its training data may know. A historical council before it "
        "is flagged (services/llm/cutoffs.py); unset: the built-in table, else unknown.",
    )
    token_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Share of the prompt's counted tokens kept spare: our tokenizer is the "
        "model's only for the models litellm knows.",
    )

    @model_validator(mode="before")
    @classmethod
    def _named(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("name") and data.get("model"):
            return {**data, "name": data["model"]}
        return data

    @model_validator(mode="after")
    def _priced(self) -> Self:
        if (self.input_cost_per_token is None) != (self.output_cost_per_token is None):
            raise ValueError(f"{self.name}: give both input and output prices, or neither")
        if self.output_limit and self.input_window and self.output_limit >= self.input_window:
            raise ValueError(
                f"{self.name}: output_limit {self.output_limit} leaves no room in the "
                f"input_window of {self.input_window}"
            )
        return self

    @property
    def priced(self) -> bool:
        return self.input_cost_per_token is not None


class RosterSpec(BaseModel):
    """Which model sits where; a role left out keeps the council's default for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    analyst: ModelName | None = None
    pm: ModelName | None = None
    reviewer: ModelName | None = None
    chairman: ModelName | None = None
    seats: dict[str, ModelName] = Field(default_factory=dict)

    @property
    def names(self) -> set[str]:
        roles = (self.analyst, self.pm, self.reviewer, self.chairman)
        return {n for n in roles if n is not None} | set(self.seats.values())

    @property
    def empty(self) -> bool:
        return not self.names


class ModelsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[ModelSpec] = Field(default_factory=list)
    roster: RosterSpec = Field(default_factory=RosterSpec)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [m.name for m in self.models]
        if dupes := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"model names must be distinct, repeated: {dupes}")
        unknown = sorted(
            n for n in self.roster.names if n not in names and not n.startswith("offline/")
        )
        if unknown:
            raise ValueError(f"the roster names models the file does not define: {unknown}")
        return self
