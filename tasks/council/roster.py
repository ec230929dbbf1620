"""Who sits on the council: analysts, portfolio managers (who also review), a chairman.

Each member has a persona (its style, written into its prompt) and a model.
Without configured models every seat is the offline analyst of its persona
(`offline/<persona>`): deterministic, data-grounded, and labelled as such.
With models configured (`LLM_MODELS`), seats take them in turn, so a council
of two models alternates them across members. A models file's roster
(`LLM_MODELS_FILE`, models/llm_config.py) then seats a model per role or per
member, and may give PMs another model for their peer reviews.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.llm_config import RosterSpec


class Role(StrEnum):
    ANALYST = "analyst"
    PM = "pm"
    CHAIRMAN = "chairman"


class Member(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    role: Role
    persona: str = Field(min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=100)
    review_model: str | None = Field(
        None, min_length=1, max_length=100, description="A PM's peer reviews; default: model."
    )


PERSONAS = ("momentum", "mean_reversion", "risk_parity", "contrarian")
ANALYST_PERSONAS = ("momentum", "risk_parity")


class Roster(BaseModel):
    model_config = ConfigDict(frozen=True)

    analysts: list[Member] = Field(min_length=1)
    pms: list[Member] = Field(min_length=2)  # a PM never reviews its own pitch: two at least
    chairman: Member

    @model_validator(mode="after")
    def _distinct(self) -> Roster:
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"member names must be distinct, got {names}")
        return self

    @property
    def members(self) -> list[Member]:
        return [*self.analysts, *self.pms, self.chairman]


@dataclass(frozen=True)
class Seats:
    analysts: Sequence[str] = ANALYST_PERSONAS
    pms: Sequence[str] = PERSONAS


def default_roster(models: Sequence[str] = (), seats: Seats | None = None) -> Roster:
    """The standard council; `models` empty means the offline analyst in every seat."""
    seats = seats or Seats()
    turn = iter(range(10_000))

    def model_for(persona: str) -> str:
        return models[next(turn) % len(models)] if models else f"offline/{persona}"

    return Roster(
        analysts=[
            Member(name=f"analyst-{p}", role=Role.ANALYST, persona=p, model=model_for(p))
            for p in seats.analysts
        ],
        pms=[
            Member(name=f"pm-{p}", role=Role.PM, persona=p, model=model_for(p)) for p in seats.pms
        ],
        chairman=Member(
            name="chairman",
            role=Role.CHAIRMAN,
            persona="chairman",
            model=models[0] if models else "offline/analyst",
        ),
    )


def roster_of(members: Sequence[Member]) -> Roster:
    """A council from a flat list of members; exactly one must be the chairman."""
    chairs = [m for m in members if m.role is Role.CHAIRMAN]
    if len(chairs) != 1:
        raise ValueError(f"a council needs exactly one chairman, got {len(chairs)}")
    return Roster(
        analysts=[m for m in members if m.role is Role.ANALYST],
        pms=[m for m in members if m.role is Role.PM],
        chairman=chairs[0],
    )


def seat_models(roster: Roster, spec: RosterSpec) -> Roster:
    """`roster` with the models `spec` assigns: a seat by name first, then its role's."""
    if spec.empty:
        return roster

    def seat(member: Member, role_model: str | None, review: str | None = None) -> Member:
        model = spec.seats.get(member.name) or role_model or member.model
        return member.model_copy(update={"model": model, "review_model": review})

    return Roster(
        analysts=[seat(m, spec.analyst) for m in roster.analysts],
        pms=[seat(m, spec.pm, spec.reviewer) for m in roster.pms],
        chairman=seat(roster.chairman, spec.chairman),
    )
