"""The research stage as map-reduce: each analyst studies the screened symbols in shards sized
to its model's window, then combines its shards' packs in one synthesis call.

* Shards follow the screen's sector groups: as many whole sectors per call as
  fit (all of them in one call when the window allows); a sector whose prompt
  does not fit alone is halved until each half does. A shard's prompt carries
  its symbols' rows and correlations and its sectors' aggregates.
* Synthesis sees every shard's regime, sector views, risks and notes, the
  market's sector table and the noted symbols' rows; when they do not fit,
  the least confident notes are left out first. One shard needs no synthesis.
* A note on a symbol its call was not given is refused with the reason (the
  model made it up, or strayed outside its shard): it never reaches a table.
  An analyst whose every shard failed, or whose synthesis failed, abstains
  with the cause; the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from models.llm_outputs import ResearchNote, ResearchPack
from models.snapshot import MarketSnapshot
from services.llm.gateway import CallContext, CallResult, LLMGateway
from tasks.council.fitting import Message, Room, largest_fitting, snapshot_of
from tasks.council.parallel import together
from tasks.council.prompts import stage_messages
from tasks.council.roster import Member
from tasks.council.screen import Screen

RESEARCH_TOKENS = 4000  # an answer of up to MAX_NOTES notes
MAX_NOTES = 20


@dataclass(frozen=True)
class ResearchOutcome:
    member: Member
    pack: ResearchPack | None
    call_id: int  # the call whose pack this is: the synthesis, or the only shard
    error: str | None = None
    calls: list[int] = field(default_factory=list)  # every call, shards first
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (symbol, why)
    shards: list[list[str]] = field(default_factory=list)


async def research_stage(
    gateway: LLMGateway,
    analysts: Sequence[Member],
    snapshot: MarketSnapshot,
    screen: Screen,
    run_id: int | None,
) -> list[ResearchOutcome]:
    """Every analyst's research, in parallel; a budget stop cancels them all."""
    return await together(_research(gateway, m, snapshot, screen, run_id) for m in analysts)


async def _research(
    gateway: LLMGateway,
    member: Member,
    snapshot: MarketSnapshot,
    screen: Screen,
    run_id: int | None,
) -> ResearchOutcome:
    room = gateway.room(member.model, ResearchPack, RESEARCH_TOKENS)
    shard_prompt = shard_prompter(member, snapshot, len(screen.chosen))
    shards = plan_shards(screen, shard_prompt, room)
    answers: list[CallResult[ResearchPack]] = await together(
        gateway.complete(
            shard_prompt(shard),
            ResearchPack,
            model=member.model,
            ctx=CallContext("research", member.name, run_id),
            max_tokens=RESEARCH_TOKENS,
        )
        for shard in shards
    )
    calls = [a.call_id for a in answers]
    rejected: list[tuple[str, str]] = []
    packs: list[ResearchPack] = []
    errors: list[str] = []
    for shard, answer in zip(shards, answers, strict=True):
        if answer.value is None:
            errors.append(answer.error or "no answer")
            continue
        pack, refused = keep_notes_on(answer.value, set(shard), "its shard")
        rejected += refused
        if pack is not None:
            packs.append(pack)
    if not packs:
        why = "; ".join(sorted(set(errors))) or "no note on a symbol it was given"
        return ResearchOutcome(member, None, calls[-1], why, calls, rejected, shards)
    if len(shards) == 1:
        return ResearchOutcome(member, packs[0], calls[0], None, calls, rejected, shards)
    return await _synthesise(gateway, member, snapshot, packs, run_id, calls, rejected, shards)


async def _synthesise(
    gateway: LLMGateway,
    member: Member,
    snapshot: MarketSnapshot,
    packs: list[ResearchPack],
    run_id: int | None,
    calls: list[int],
    rejected: list[tuple[str, str]],
    shards: list[list[str]],
) -> ResearchOutcome:
    notes = sorted((n for p in packs for n in p.notes), key=lambda n: (-n.confidence, n.symbol))
    room = gateway.room(member.model, ResearchPack, RESEARCH_TOKENS)

    def prompt(k: int) -> list[Message]:
        return _synthesis_messages(member, snapshot, packs, notes[:k])

    _, messages = largest_fitting(len(notes), prompt, room)
    answer = await gateway.complete(
        messages,
        ResearchPack,
        model=member.model,
        ctx=CallContext("research", member.name, run_id),
        max_tokens=RESEARCH_TOKENS,
    )
    calls = [*calls, answer.call_id]
    if answer.value is None:
        why = f"synthesis of {len(packs)} shards failed: {answer.error or 'no answer'}"
        return ResearchOutcome(member, None, answer.call_id, why, calls, rejected, shards)
    pack, refused = keep_notes_on(answer.value, {n.symbol for n in notes}, "any shard's notes")
    rejected += refused
    if pack is None:
        why = "the synthesis kept no note on a researched symbol"
        return ResearchOutcome(member, None, answer.call_id, why, calls, rejected, shards)
    return ResearchOutcome(member, pack, answer.call_id, None, calls, rejected, shards)


def plan_shards(
    screen: Screen, prompt: Callable[[Sequence[str]], list[Message]], room: Room
) -> list[list[str]]:
    """The screen's symbols in as few shards as fit: whole sector groups packed in order,
    a group that does not fit alone halved until each half does."""
    if room.fits(prompt(screen.chosen)):
        return [list(screen.chosen)]
    groups: dict[str, list[str]] = {}
    for symbol in screen.chosen:
        groups.setdefault(screen.sectors.get(symbol, ""), []).append(symbol)
    shards: list[list[str]] = []
    current: list[str] = []
    for symbols in groups.values():
        if current and room.fits(prompt([*current, *symbols])):
            current = [*current, *symbols]
            continue
        if current:
            shards.append(current)
        parts = _split(symbols, prompt, room)
        shards += parts[:-1]
        current = parts[-1]
    if current:
        shards.append(current)
    return shards


def _split(
    symbols: list[str], prompt: Callable[[Sequence[str]], list[Message]], room: Room
) -> list[list[str]]:
    if len(symbols) <= 1 or room.fits(prompt(symbols)):
        return [symbols]  # one symbol that does not fit: the gateway refuses it, with numbers
    middle = len(symbols) // 2
    return _split(symbols[:middle], prompt, room) + _split(symbols[middle:], prompt, room)


def keep_notes_on(
    pack: ResearchPack, allowed: set[str], where: str
) -> tuple[ResearchPack | None, list[tuple[str, str]]]:
    """`pack` without its notes on symbols outside `allowed`, and those refused with why;
    None when no note is left (a pack needs one)."""
    kept: list[ResearchNote] = [n for n in pack.notes if n.symbol in allowed]
    refused = [
        (n.symbol, f"{n.symbol} is not among {where}")
        for n in pack.notes
        if n.symbol not in allowed
    ]
    if not kept:
        return None, refused
    if len(kept) == len(pack.notes):
        return pack, refused
    return pack.model_copy(update={"notes": kept}), refused


def shard_prompter(
    member: Member, snapshot: MarketSnapshot, screened: int
) -> Callable[[Sequence[str]], list[Message]]:
    """The research prompt of `member` for a shard of the `screened` symbols."""

    def prompt(symbols: Sequence[str]) -> list[Message]:
        return _shard_messages(member, snapshot, symbols, screened)

    return prompt


def _shard_messages(
    member: Member, snapshot: MarketSnapshot, symbols: Sequence[str], total: int
) -> list[Message]:
    part = snapshot_of(snapshot, symbols)
    sectors = {m.sector for m in part.symbols}
    part = part.model_copy(update={"sectors": [s for s in snapshot.sectors if s.sector in sectors]})
    shard = f"{len(part.symbols)} of the {total} symbols the council screened"
    return stage_messages(
        "research",
        member,
        {"snapshot": part.model_dump(mode="json")},
        shard=shard,
        max_notes=min(MAX_NOTES, len(part.symbols)),
    )


def _synthesis_messages(
    member: Member,
    snapshot: MarketSnapshot,
    packs: Sequence[ResearchPack],
    notes: Sequence[ResearchNote],
) -> list[Message]:
    keep = {id(n) for n in notes}
    parts = []
    for i, pack in enumerate(packs):
        kept = [n for n in pack.notes if id(n) in keep]
        if kept:
            part = pack.model_copy(update={"notes": kept})
            parts.append(
                {"member": f"{member.name}/part-{i + 1}", "pack": part.model_dump(mode="json")}
            )
    noted = snapshot_of(snapshot, {n.symbol for n in notes}, correlation=False)
    context = {"snapshot": noted.model_dump(mode="json"), "research": parts}
    return stage_messages("synthesis", member, context, max_notes=MAX_NOTES)
