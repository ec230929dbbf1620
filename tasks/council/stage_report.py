"""What each stage of a council run did and, for a run with no decision, why it has none.

Built only from what the run stored (db/queries/council_causes.py), so it
explains runs long finished, on any machine; `aitrader council show` and
`GET /api/council/{id}` print it. Stages in the flow's order: research,
pitches, review, chairman (models, each member's answer counted, see
`tasks.council.causes`), approval and execution (no model: what became of
the decisions and their trade intents).

What the run never stored is not guessed. A member with no call in a stage
the run was cut short in was not asked (`budget` when the run stopped on
its budget). A reviewer whose valid answer kept no score had its ballot
refused, and the reason is not stored. Holds the chairman called are
counted from its stored answer; they are no decision. Pure but for the
read in `run_report`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from db.queries.council_causes import Seat, StoredRun, stored_run
from models.enums import DecisionStatus, IntentStatus, RunStatus
from tasks.council.causes import Answer, Cause, MemberAnswer, StageState, StageSummary, answer_of


@dataclass(frozen=True)
class RunReport:
    run_id: int
    decisions: int
    stages: tuple[StageSummary, ...]
    why_no_decision: tuple[str, ...] = ()  # empty when there are decisions


def run_report(session: Session, run_id: int) -> RunReport:
    """The run's stages and, if it has no decision, why; `NotFoundError` if no such run."""
    return summarise(stored_run(session, run_id))


def summarise(run: StoredRun) -> RunReport:
    """Each stage in the flow's order; one after a stage that did not finish was not reached,
    nor one after the stage a run was asked to stop after."""
    stop = _STOP_AFTER.get(run.stopped_after or "", len(_BUILDERS))
    stages: list[StageSummary] = []
    for i, (name, build) in enumerate(_BUILDERS):
        previous = stages[-1].state if stages else StageState.DONE
        if i > stop:
            stages.append(StageSummary(name, StageState.NOT_REACHED, run.detail or "-"))
        elif previous not in (StageState.DONE, StageState.SKIPPED):
            stages.append(StageSummary(name, StageState.NOT_REACHED, "-"))
        else:
            stages.append(build(run))
    why = () if run.decisions else tuple(_why(run, stages))
    return RunReport(run.run_id, len(run.decisions), tuple(stages), why)


_STOP_AFTER = {"research": 0, "pitches": 1, "chairman": 3}  # the flow's `stop_after` values
_ENDED_EARLY = (RunStatus.CANCELED, RunStatus.FAILED)
_UNDER_WAY = (RunStatus.PENDING, RunStatus.RUNNING)
_UNASKED = "no call recorded: the run stopped before asking"


# --- the model stages ------------------------------------------------------------------


def _research(run: StoredRun) -> StageSummary:
    members, state = _members(run, "research", _seats(run, "analyst"))
    packs = sum(m.answer is not Answer.ABSTAINED for m in members)
    outcome = _n(packs, "research pack") if packs else "no research: nothing to pitch from"
    return _stage("research", state, outcome, members)


def _pitches(run: StoredRun) -> StageSummary:
    asked = any(c.stage == "pitch" for c in run.calls)
    if not asked and run.status not in _UNDER_WAY and not _researched(run):
        outcome = "no research to pitch from: the PMs were not asked"
        return StageSummary("pitches", StageState.SKIPPED, outcome, models=True)
    members, state = _members(run, "pitch", _seats(run, "pm"))
    kept = [p for p in run.pitches if p.dropped_reason is None]
    outcome = f"{len(kept)} of {len(run.pitches)} pitches kept for review"
    if not run.pitches:
        outcome = "no pitch made"
    notes = [
        f"{p.symbol} by {p.pm} dropped: {why}" for p in run.pitches if (why := p.dropped_reason)
    ]
    return _stage("pitches", state, outcome, members, notes)


def _researched(run: StoredRun) -> bool:
    """Whether any analyst's research was usable (its latest call answered)."""
    latest = {c.member: c for c in run.calls if c.stage == "research"}
    return any(answer_of(c).answer is not Answer.ABSTAINED for c in latest.values())


def _review(run: StoredRun) -> StageSummary:
    kept = [p for p in run.pitches if p.dropped_reason is None]
    if not kept:
        return StageSummary("review", StageState.SKIPPED, "no pitch to review", models=True)
    seats = [s for s in _seats(run, "pm") if any(p.pm != s.name for p in kept)]
    members, state = _members(run, "review", seats, reviewers=run.reviewers)
    return _stage("review", state, f"{len(run.reviewed)} of {len(kept)} pitches reviewed", members)


def _chairman(run: StoredRun) -> StageSummary:
    if not run.reviewed:
        outcome = "no reviewed pitch to decide on: the chairman was not asked"
        return StageSummary("chairman", StageState.SKIPPED, outcome, models=True)
    members, state = _members(run, "chairman", _seats(run, "chairman"))
    if members and all(m.answer is Answer.ABSTAINED for m in members):
        return _stage("chairman", state, "no verdict: the chairman abstained", members)
    parts = [_n(len(run.decisions), "decision"), _n(run.chair_holds, "hold")]
    if run.chair_refusals:
        parts.append(_n(len(run.chair_refusals), "call") + " refused")
    notes = [f"refused {r}" for r in run.chair_refusals]
    return _stage("chairman", state, ", ".join(parts), members, notes)


def _members(
    run: StoredRun, stage: str, seats: list[Seat], reviewers: frozenset[str] | None = None
) -> tuple[list[MemberAnswer], StageState]:
    """Each member's latest answer in `stage`, the roster's seats first; the stage's state."""
    latest = {c.member: c for c in run.calls if c.stage == stage}
    seated = {s.name: s.model for s in seats}
    members: list[MemberAnswer] = []
    missing = False
    for name in [*seated, *(m for m in latest if m not in seated)]:
        call = latest.get(name)
        if call is not None:
            members.append(answer_of(call, None if reviewers is None else name in reviewers))
            continue
        missing = True
        if run.status not in _UNDER_WAY:  # under way, it may still answer
            cause = Cause.BUDGET if "budget" in (run.detail or "") else Cause.NOT_ASKED
            members.append(MemberAnswer(name, seated[name], Answer.ABSTAINED, cause, _UNASKED))
    return members, _state(run, members, missing)


def _state(run: StoredRun, members: list[MemberAnswer], missing: bool) -> StageState:
    if missing and run.status in _UNDER_WAY:
        return StageState.RUNNING
    if run.status in _ENDED_EARLY and (missing or any(m.cause is Cause.BUDGET for m in members)):
        return StageState.STOPPED
    return StageState.DONE


def _stage(
    name: str,
    state: StageState,
    outcome: str,
    members: list[MemberAnswer],
    notes: Iterable[str] = (),
) -> StageSummary:
    return StageSummary(name, state, outcome, True, tuple(members), tuple(notes))


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _seats(run: StoredRun, role: str) -> list[Seat]:
    return [s for s in run.roster if s.role == role]


# --- approval and execution ------------------------------------------------------------


def _approval(run: StoredRun) -> StageSummary:
    if not run.decisions:
        return StageSummary("approval", StageState.SKIPPED, "no decision to approve")
    proposed = [d for d in run.decisions if d.status is DecisionStatus.PROPOSED]
    if proposed and run.status in _UNDER_WAY:
        outcome = f"{len(proposed)} proposed, waiting for an approver"
        return StageSummary("approval", StageState.WAITING, outcome)
    groups = Counter((str(d.status), d.approved_by or "nobody") for d in run.decisions)
    outcome = ", ".join(f"{n} {status} by {who}" for (status, who), n in groups.items())
    notes = [
        f"decision {d.id} ({d.symbol}) {d.status}: {d.note}"
        for d in run.decisions
        if d.status is DecisionStatus.REJECTED and d.note
    ]
    state = StageState.STOPPED if proposed and run.status in _ENDED_EARLY else StageState.DONE
    return StageSummary("approval", state, outcome, notes=tuple(notes))


def _execution(run: StoredRun) -> StageSummary:
    if not any(d.status is DecisionStatus.APPROVED for d in run.decisions):
        return StageSummary("execution", StageState.SKIPPED, "nothing approved to execute")
    if not run.intents:
        state = StageState.RUNNING if run.status in _UNDER_WAY else StageState.NOT_REACHED
        ended = StageState.STOPPED if run.status in _ENDED_EARLY else state
        return StageSummary("execution", ended, "no trade intent recorded")
    statuses = Counter(str(i.status) for i in run.intents)
    outcome = f"{_n(len(run.intents), 'intent')}: " + ", ".join(
        f"{n} {s}" for s, n in statuses.items()
    )
    refused = (IntentStatus.RISK_REJECTED, IntentStatus.FAILED)
    notes = [
        f"{i.account} {i.side} {i.qty.normalize():f} {i.symbol}: {i.status}"
        f" [{', '.join(i.checks) or '-'}] {i.reason or ''}".rstrip()
        for i in run.intents
        if i.status in refused
    ]
    state = StageState.STOPPED if run.status is RunStatus.FAILED else StageState.DONE
    return StageSummary("execution", state, outcome, notes=tuple(notes))


_BUILDERS: tuple[tuple[str, Callable[[StoredRun], StageSummary]], ...] = (
    ("research", _research),
    ("pitches", _pitches),
    ("review", _review),
    ("chairman", _chairman),
    ("approval", _approval),
    ("execution", _execution),
)


# --- why no decision -------------------------------------------------------------------


def _why(run: StoredRun, stages: list[StageSummary]) -> list[str]:
    """How the run ended, then each model stage that ran, up to the one that passed nothing
    on (a stage skipped or stopped, no pitch kept, none reviewed, or the chairman's)."""
    lines = []
    if run.status in _ENDED_EARLY:
        ended = "was canceled" if run.status is RunStatus.CANCELED else "failed"
        lines.append(f"the run {ended}: {run.detail or 'no cause stored'}")
    elif run.status in _UNDER_WAY:
        lines.append(f"the run is still {run.status} (last stage: {run.job_stage or '-'})")
    elif run.detail:
        lines.append(f"the run {run.status}: {run.detail}")
    for stage in stages[:4]:
        if stage.state is StageState.NOT_REACHED:
            break
        lines.append(stage.line)
        if stage.state is not StageState.DONE or _passed_nothing(stage, run):
            break
    return lines


def _passed_nothing(stage: StageSummary, run: StoredRun) -> bool:
    if stage.stage == "pitches":
        return not any(p.dropped_reason is None for p in run.pitches)
    if stage.stage == "review":
        return not run.reviewed
    return stage.stage == "chairman"  # with no decision, the chairman is where it ended
