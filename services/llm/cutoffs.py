"""What a model may remember: its training cutoff, and which council seats sit before it.

A model trained on text written after a past week may know how that week
ended: prices, earnings, crashes. A council backtest over such weeks measures
its memory, not its judgement. So every historical sitting names the members
whose model's cutoff is after its `as_of` ("this model may know what happened
next"), and a setting can refuse such sittings instead.

Where a cutoff comes from, in order: the models file (`training_cutoff`),
then `KNOWN_CUTOFFS` below (the vendors' published cutoffs, by model name;
litellm's cost map does not carry them), else unknown. An unknown cutoff is
treated as a late one: a model nobody vouches for may know anything. The
offline analyst is trained on nothing and never flagged.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from services.llm.catalog import ModelCatalog

MAY_KNOW = "this model may know what happened next"

KNOWN_CUTOFFS: dict[str, date] = {
    # published "knowledge cutoff" months, as the last day of that month; longest match wins
    "gpt-3.5-turbo": date(2021, 9, 30),
    "gpt-4": date(2021, 9, 30),
    "gpt-4-turbo": date(2023, 12, 31),
    "gpt-4o": date(2023, 10, 31),
    "gpt-4o-mini": date(2023, 10, 31),
    "gpt-4.1": date(2024, 6, 30),
    "o1": date(2023, 10, 31),
    "o3-mini": date(2023, 10, 31),
    "claude-3-haiku": date(2023, 8, 31),
    "claude-3-opus": date(2023, 8, 31),
    "claude-3-5-sonnet": date(2024, 4, 30),
    "claude-3-5-haiku": date(2024, 7, 31),
    "claude-3-7-sonnet": date(2024, 10, 31),
    "gemini-1.5": date(2023, 11, 30),
    "gemini-2.0": date(2024, 8, 31),
    "llama3.1": date(2023, 12, 31),
    "llama-3.1": date(2023, 12, 31),
    "llama3.2": date(2023, 12, 31),
    "llama-3.2": date(2023, 12, 31),
    "mistral-large": date(2024, 7, 31),
}


@dataclass(frozen=True)
class Cutoff:
    """A model's training cutoff and where it was learnt; `day` None: unknown."""

    model: str
    day: date | None
    source: str  # "models file", "built-in table", "unknown", "offline"

    def may_know(self, as_of: date) -> bool:
        if self.source == "offline":
            return False
        return self.day is None or as_of <= self.day

    def describe(self) -> str:
        if self.day is None:
            return "training cutoff unknown"
        return f"trained on data to {self.day} ({self.source})"


@dataclass(frozen=True)
class CutoffFlag:
    """A seat of a historical council whose model may know what followed its `as_of`."""

    member: str
    model: str
    cutoff: date | None
    source: str

    def record(self) -> dict[str, str | None]:
        return {
            "member": self.member,
            "model": self.model,
            "cutoff": self.cutoff.isoformat() if self.cutoff else None,
            "source": self.source,
            "warning": MAY_KNOW,
        }


def training_cutoff(catalog: ModelCatalog, name: str) -> Cutoff:
    """The cutoff of the model the roster calls `name`."""
    facts = catalog.facts(name)
    if facts.provider == "offline":
        return Cutoff(name, None, "offline")
    if facts.spec.training_cutoff is not None:
        return Cutoff(name, facts.spec.training_cutoff, "models file")
    bare = facts.model.rsplit("/", 1)[-1].lower()
    matches = [
        k
        for k in KNOWN_CUTOFFS
        if bare == k or bare.startswith(k + "-") or bare.startswith(k + ":")
    ]
    if matches:
        return Cutoff(name, KNOWN_CUTOFFS[max(matches, key=len)], "built-in table")
    return Cutoff(name, None, "unknown")


def cutoff_flags(
    catalog: ModelCatalog, seats: Iterable[tuple[str, str]], as_of: date
) -> list[CutoffFlag]:
    """The (member, model) seats whose model may know what followed `as_of`."""
    flags = []
    for member, model in seats:
        cutoff = training_cutoff(catalog, model)
        if cutoff.may_know(as_of):
            flags.append(CutoffFlag(member, model, cutoff.day, cutoff.source))
    return flags


def caveat_of(flags: Iterable[CutoffFlag]) -> str | None:
    """One line naming every seat that may know what followed, or None: what heads a flagged
    run's artifacts and ends its summary."""
    named = [
        f"{f.member} ({f.model}, {f'cutoff {f.cutoff}' if f.cutoff else 'cutoff unknown'})"
        for f in flags
    ]
    return f"{MAY_KNOW}: " + "; ".join(named) if named else None
