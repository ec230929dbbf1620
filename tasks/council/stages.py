"""The council's four model stages: research -> pitches -> anonymous peer review -> chairman.

Each stage asks its members in parallel (one `asyncio.TaskGroup`, so a
budget stop cancels the stage's other calls) and returns typed outcomes; a
member whose answer stayed invalid abstains, with the reason in its outcome
and in its `llm_calls` row. What a stage refuses (pitches off the universe or
with a bad bracket, chairman calls on unpitched symbols) is returned with the
reason, never passed on. No database here: the flow persists outcomes.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from models.enums import DecisionAction
from models.llm_outputs import (
    ChairmanCall,
    ChairmanVerdict,
    PeerReviewBatch,
    PitchBook,
    PitchProposal,
    ResearchNote,
    ResearchPack,
)
from models.snapshot import MarketSnapshot
from services.llm.gateway import CallContext, LLMGateway
from tasks.council.aggregate import (
    Ballot,
    BallotError,
    Ranking,
    agreement,
    assign_labels,
    ballot_from_labels,
    label_order,
    position_effect,
    rank_pitches,
)
from tasks.council.fitting import Message, largest_fitting, snapshot_of
from tasks.council.parallel import each
from tasks.council.prompts import stage_messages
from tasks.council.research import ResearchOutcome
from tasks.council.roster import Member, Roster
from tasks.council.validation import ChairRules, PitchRules, call_problem, pitch_problem

R = TypeVar("R")
PITCH_TOKENS = 2000
REVIEW_TOKENS = 2000
CHAIR_TOKENS = 2000


@dataclass(frozen=True)
class PitchOutcome:
    member: Member
    pitch: PitchProposal
    call_id: int
    dropped: str | None = None  # why validation refused it; None: it goes to review


@dataclass(frozen=True)
class PitchAbstention:
    member: Member
    call_id: int
    error: str


@dataclass(frozen=True)
class Candidate:
    """A pitch that passed validation, under its database id."""

    pitch_id: int
    author: str
    pitch: PitchProposal


@dataclass(frozen=True)
class ReviewBallot:
    reviewer: Member
    labels: dict[str, int]  # label shown -> pitch id
    batch: PeerReviewBatch | None
    call_id: int
    error: str | None = None


@dataclass(frozen=True)
class ReviewOutcome:
    ballots: list[ReviewBallot]
    ranking: Ranking  # what the chairman is shown: `weighted` when weighting is on, else `plain`
    agreement: float | None  # Kendall's W, adapted to each reviewer skipping its own pitch
    position_effect: float | None  # Spearman(display position, score); < 0: first shown favoured
    plain: Ranking | None = None  # one reviewer, one vote
    weighted: Ranking | None = None  # votes weighted by the reviewers' skill, when known
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ChairOutcome:
    labels: dict[str, int]  # label shown to the chairman -> pitch id (A = best ranked)
    accepted: list[tuple[ChairmanCall, int]]  # calls to act on, with their pitch id
    rejected: list[tuple[ChairmanCall, str]]
    holds: list[ChairmanCall]
    summary: str | None
    call_id: int
    error: str | None = None
    ranking_view: list[dict[str, Any]] = field(default_factory=list)


async def pitch_stage(
    gateway: LLMGateway,
    roster: Roster,
    snapshot: MarketSnapshot,
    research: Sequence[ResearchOutcome],
    run_id: int | None,
    rules: PitchRules,
) -> tuple[list[PitchOutcome], list[PitchAbstention]]:
    packs = [(r.member.name, r.pack) for r in research if r.pack is not None]
    if not packs:  # a pitch must name a researched symbol: with no research, none can
        return [], []
    researched = frozenset(n.symbol for _, pack in packs for n in pack.notes)
    rules = replace(rules, researched=researched)
    notes = sorted(
        ((name, n) for name, pack in packs for n in pack.notes),
        key=lambda item: (-item[1].confidence, item[1].symbol, item[0]),
    )

    async def ask(member: Member) -> list[PitchOutcome] | PitchAbstention:
        room = gateway.room(member.model, PitchBook, PITCH_TOKENS)

        def prompt(k: int, correlation: bool = True) -> list[Message]:
            context = _pitch_context(snapshot, packs, notes[:k], correlation)
            return stage_messages("pitch", member, context, min_reward_risk=rules.min_reward_risk)

        messages = prompt(len(notes))
        if not room.fits(messages):
            _, messages = largest_fitting(len(notes), lambda k: prompt(k, False), room)
        result = await gateway.complete(
            messages,
            PitchBook,
            model=member.model,
            ctx=CallContext("pitch", member.name, run_id),
            max_tokens=PITCH_TOKENS,
        )
        if result.value is None:
            return PitchAbstention(member, result.call_id, result.error or "no answer")
        return [
            PitchOutcome(member, p, result.call_id, pitch_problem(p, snapshot, rules))
            for p in result.value.pitches
        ]

    pitches: list[PitchOutcome] = []
    abstentions: list[PitchAbstention] = []
    for answer in await each(ask, roster.pms):
        if isinstance(answer, PitchAbstention):
            abstentions.append(answer)
        else:
            pitches.extend(answer)
    return pitches, abstentions


async def review_stage(
    gateway: LLMGateway,
    roster: Roster,
    snapshot: MarketSnapshot,
    candidates: Sequence[Candidate],
    run_id: int | None,
    seed: str,
    weights: Mapping[str, float] | None = None,
    weighted: bool = False,
) -> ReviewOutcome:
    """Each PM scores the others' pitches under labels shuffled for it alone. With
    `weights` (tasks/council/skill.py) both tallies are kept; `weighted` ranks by the
    weighted one."""
    by_id = {c.pitch_id: c for c in candidates}
    ids = sorted(by_id)

    async def ask(member: Member) -> ReviewBallot | None:
        own = [c.pitch_id for c in candidates if c.author == member.name]
        # str seeds hash with sha512: the same shuffle in every process, so replays agree.
        labels = assign_labels(ids, own, random.Random(f"{seed}:{member.name}"))  # noqa: S311
        if not labels:
            return None
        shown = [
            {"label": label, "pitch": by_id[labels[label]].pitch.model_dump(mode="json")}
            for label in label_order(labels)
        ]
        symbols = {by_id[pid].pitch.symbol for pid in labels.values()}
        context = {"snapshot": _about(snapshot, symbols), "pitches": shown}
        model = member.review_model or member.model
        result = await gateway.complete(
            stage_messages("review", member, context),
            PeerReviewBatch,
            model=model,
            ctx=CallContext("review", member.name, run_id),
            max_tokens=REVIEW_TOKENS,
        )
        return ReviewBallot(member, labels, result.value, result.call_id, result.error)

    answers = [b for b in await each(ask, roster.pms) if b is not None]
    ballots: list[Ballot] = []
    kept: list[ReviewBallot] = []
    for answer in answers:
        if answer.batch is None:
            kept.append(answer)
            continue
        scores = {r.pitch: r.score for r in answer.batch.reviews}
        try:
            ballots.append(ballot_from_labels(answer.reviewer.name, answer.labels, scores))
        except BallotError as exc:  # scored labels it was not shown: the ballot does not count
            answer = ReviewBallot(answer.reviewer, answer.labels, None, answer.call_id, str(exc))
        kept.append(answer)
    plain = rank_pitches(ballots, ids)
    skilled = rank_pitches(ballots, ids, weights) if weights else None
    return ReviewOutcome(
        ballots=kept,
        ranking=skilled if weighted and skilled is not None else plain,
        agreement=agreement(ballots),
        position_effect=position_effect(ballots),
        plain=plain,
        weighted=skilled,
        weights=dict(weights or {}),
    )


async def chair_stage(
    gateway: LLMGateway,
    roster: Roster,
    snapshot: MarketSnapshot,
    candidates: Sequence[Candidate],
    review: ReviewOutcome,
    run_id: int | None,
    rules: ChairRules,
) -> ChairOutcome:
    by_id = {c.pitch_id: c for c in candidates}
    reviewed = [s for s in review.ranking.standings if s.borda is not None]
    labels = {_label(i): s.pitch_id for i, s in enumerate(reviewed)}
    ranking_view = [
        {"label": _label(i), "score": round(s.borda or 0.0, 6), "reviews": s.reviews}
        for i, s in enumerate(reviewed)
    ]
    if not reviewed:
        return ChairOutcome(labels, [], [], [], "no reviewed pitch to decide on", 0, None)
    context = {
        "snapshot": _about(snapshot, {by_id[pid].pitch.symbol for pid in labels.values()}),
        "pitches": [
            {"label": label, "pitch": by_id[pid].pitch.model_dump(mode="json")}
            for label, pid in labels.items()
        ],
        "ranking": ranking_view,
        "max_positions": rules.max_positions,
        "max_weight": str(rules.max_weight),
    }
    chairman = roster.chairman
    result = await gateway.complete(
        stage_messages(
            "chairman",
            chairman,
            context,
            max_weight=rules.max_weight,
            max_positions=rules.max_positions,
        ),
        ChairmanVerdict,
        model=chairman.model,
        ctx=CallContext("chairman", chairman.name, run_id),
        max_tokens=CHAIR_TOKENS,
    )
    if result.value is None:
        return ChairOutcome(labels, [], [], [], None, result.call_id, result.error, ranking_view)
    shown = {label: by_id[pid].pitch for label, pid in labels.items()}
    accepted: list[tuple[ChairmanCall, int]] = []
    rejected: list[tuple[ChairmanCall, str]] = []
    holds: list[ChairmanCall] = []
    for call in result.value.calls:
        problem = call_problem(call, shown, rules)
        if (
            problem is None
            and call.action is not DecisionAction.HOLD
            and len(accepted) >= rules.max_positions
        ):
            problem = f"over the limit of {rules.max_positions} positions"
        if problem is not None:
            rejected.append((call, problem))
        elif call.action is DecisionAction.HOLD:
            holds.append(call)
        else:
            accepted.append((call, labels[str(call.pitch)]))
    return ChairOutcome(
        labels, accepted, rejected, holds, result.value.summary, result.call_id, None, ranking_view
    )


def _pitch_context(
    snapshot: MarketSnapshot,
    packs: Sequence[tuple[str, ResearchPack]],
    notes: Sequence[tuple[str, ResearchNote]],
    correlation: bool,
) -> dict[str, Any]:
    """The researched symbols' rows and the packs, with only the `notes` kept (most
    confident first), so the prompt fits the PM's model."""
    kept = {id(n) for _, n in notes}
    research = []
    for name, pack in packs:
        mine = [n for n in pack.notes if id(n) in kept]
        if mine:
            trimmed = pack.model_copy(update={"notes": mine})
            research.append({"member": name, "pack": trimmed.model_dump(mode="json")})
    symbols = {n.symbol for _, n in notes}
    cut = snapshot_of(snapshot, symbols, correlation=correlation)
    return {"snapshot": cut.model_dump(mode="json"), "research": research}


def _about(snapshot: MarketSnapshot, symbols: set[str]) -> dict[str, Any]:
    """The snapshot as JSON, cut to the symbols a prompt is about."""
    return snapshot_of(snapshot, symbols).model_dump(mode="json")


def _label(index: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[index] if index < 26 else letters[index // 26 - 1] + letters[index % 26]
