"""The weekly council as a Prefect flow: snapshot -> research -> pitches -> peer review ->
chairman -> approval, each stage a task, a barrier between stages, members in parallel.

Every stage's outcome is written to the project's tables as the stage ends
(db/queries/council.py) and announced through the `jobs` row the realtime
process watches; artifacts summarise the run in the Prefect UI. The approval
gate pauses the flow run (`pause_flow_run` with a typed `ApprovalInput`): it
is resumed from the UI's Resume button or `aitrader council approve`; the
README says why pause and not suspend. A budget stop ends the run as
Cancelled with the reason, before any decision is written.

Async on purpose: the whole run shares one event loop, which litellm's
client sessions need.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar, cast

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.client.schemas.objects import State
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, Completed, Failed
from prefect.utilities.annotations import quote
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, read_sessions_of, transaction, unit_of_work
from db.queries import council as q
from db.queries.bar_coverage import bar_coverage
from db.queries.jobs import job_owner, open_council_run
from db.queries.llm_calls import SqlCallStore
from flows.council_run import CouncilRun
from flows.council_tasks import (
    chair_task,
    pitch_task,
    research_task,
    review_task,
    snapshot_task,
)
from flows.execution import execution_stage
from flows.job_hooks import JOB_HOOKS
from models.days import decision_instant
from models.enums import DecisionStatus, RunStatus, Timeframe
from models.errors import BudgetExceededError, InvalidInputError, describe_failure
from services.bus.job_updates import announce_job
from services.llm.budget import RunBudget
from services.llm.catalog import catalog_from_settings
from services.llm.cutoffs import caveat_of, cutoff_flags
from services.llm.gateway import LLMGateway
from services.llm.limits import ProviderLimits
from services.llm.offline import register_offline_provider
from services.settings import get_settings
from tasks.council.anonymise import aliases_for
from tasks.council.roster import Member, Roster, default_roster, roster_of, seat_models
from tasks.council.validation import ChairRules, PitchRules
from tasks.council.week import council_day

T = TypeVar("T")
STAGES = ("snapshot", "research", "pitches", "review", "chairman", "approval", "execution")


class ApprovalInput(RunInput):
    """What an approver sends to resume a paused council: every proposed decision is
    approved except the ids in `reject`."""

    reject: list[int] = []
    note: str | None = None
    approver: str = "prefect-ui"


@flow(name="weekly-council", retries=0, **JOB_HOOKS)
async def weekly_council(
    as_of: date | None = None,
    universe: list[str] | None = None,
    models: list[str] | None = None,
    members: list[Member] | None = None,
    approval: Literal["manual", "auto"] = "manual",
    budget_usd: float | None = None,
    max_positions: int = 5,
    max_weight: float = 0.2,
    min_reward_risk: float = 1.5,
    approval_timeout_s: int = 7 * 24 * 3600,
    execute: bool = True,
    stop_after: Literal["research", "pitches", "chairman"] | None = None,
    job_id: int | None = None,
    replay: bool = False,
    sitting_of: int | None = None,
    cutoff_policy: Literal["flag", "refuse"] | None = None,
    anonymise: bool = False,
    weighting: bool | None = None,
) -> State[Any]:
    """One council sitting for `as_of` (default: the latest day with stored daily bars; a day
    outside the stored range is refused, tasks/council/week.py); returns the run's summary.

    `members` seats a council of your own (roles analyst, pm and one chairman, each with a
    persona and a model); otherwise the standard council sits, on `models` taken in turn,
    else as the models file's roster seats it (LLM_MODELS_FILE) over LLM_MODELS, the
    offline analyst when there are none. With `execute`, the approved
    decisions are then sent to every configured account (flows/execution.py).
    `stop_after` ends the run (completed) after that stage: research alone, or the pitches
    too (the research prompts are then answered from the response cache, at $0). `job_id`
    is the API's job row this run reports to (flows/jobs.py); without one a row is made.

    `replay` sits the week again from the response cache alone: no model is asked (an
    answer not in the cache is an abstention, "not in cache"), nothing is spent, and the
    run ends after the chairman: its decisions are never approved or executed. They are
    there to compare with the original run's (`aitrader council replay`).

    `sitting_of` names the council backtest this run is a sitting of
    (flows/council_backtest.py): it makes no job of its own, ends after the chairman and
    executes nothing; the backtest executes its decisions over the stored bars.

    A day before a member's training cutoff is flagged on the run, its artifacts and its
    summary ("this model may know what happened next", services/llm/cutoffs.py), or
    refused with `cutoff_policy="refuse"` (default: COUNCIL_CUTOFF_POLICY). `anonymise`
    shows the council aliases for symbols and rescaled prices (tasks/council/anonymise.py);
    its rows still name the real ones.

    Every sitting first scores the earlier sittings' pitches that the bars now known
    resolve (the track record, tasks/council_backtest/judge.py). `weighting` (default
    COUNCIL_VOTE_WEIGHTING) ranks the pitches for the chairman by reviews weighted by each
    reviewer's skill so far; both tallies are kept on the record either way.
    """
    settings = get_settings()
    register_offline_provider()
    if as_of is not None:
        decision_instant(as_of)  # a day to come is refused before the database is opened
    configured = [m for m in (models or settings.llm_models) if m != "offline"]
    catalog, models_file = catalog_from_settings(settings)
    if members:
        roster = roster_of(members)
    elif models:  # asked for by name: the models file's roster does not override it
        roster = default_roster(configured)
    else:
        roster = seat_models(default_roster(configured), models_file.roster)
    if replay or sitting_of is not None:
        execute, stop_after = False, "chairman"
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    try:
        with read_sessions_of(sessions)() as session:
            asked = as_of.date() if isinstance(as_of, datetime) else as_of
            chosen = council_day(session, asked, universe)
            symbols = universe or sorted(
                {c.symbol for c in bar_coverage(session, None, Timeframe.D1)}
            )
        when = decision_instant(as_of if isinstance(as_of, datetime) else chosen.day)
        get_run_logger().info("council %s", chosen.describe())
        seats = [(m.name, m.model) for m in roster.members]
        seats += [(m.name, m.review_model) for m in roster.pms if m.review_model]
        flags = cutoff_flags(catalog, seats, when.date())
        caveat = caveat_of(flags)
        if flags and (cutoff_policy or settings.council_cutoff_policy) == "refuse":
            raise InvalidInputError("as_of", f"{caveat}; refused (COUNCIL_CUTOFF_POLICY=refuse)")
        if caveat:
            get_run_logger().warning("council as of %s: %s", when.date(), caveat)
        params = {
            "universe": symbols,
            "roster": [m.model_dump(mode="json") for m in roster.members],
            "approval": approval,
            "max_positions": max_positions,
            "max_weight": max_weight,
            "min_reward_risk": min_reward_risk,
        }
        if replay:
            params["replay"] = True
        if sitting_of is not None:
            params["sitting_of"] = sitting_of
        if flags:
            params["may_know"] = [f.record() for f in flags]
        if anonymise:
            params["anonymised"] = True
        weighted = settings.council_vote_weighting if weighting is None else weighting
        if weighted:
            params["weighting"] = True
        budget = Decimal(str(budget_usd)) if budget_usd is not None and not replay else None
        council, opened = await asyncio.to_thread(
            transaction,
            sessions,
            lambda s: open_council_run(
                s,
                job_id=job_id,
                owner=job_owner() if job_id is None else None,  # a CLI or scheduled sitting
                flow_run_id=str(current_flow_run.id),
                as_of=when,
                budget_usd=budget,
                params=params,
                own_job=sitting_of is None,
            ),
        )
        run_id, job_id = council.id, council.job_id
        gateway = LLMGateway(
            SqlCallStore(sessions),
            budget=RunBudget(budget) if budget is not None else None,
            limits=ProviderLimits(settings.llm_concurrency),
            catalog=catalog,
            cache_only=replay,
        )
        aliases = aliases_for(symbols) if anonymise else None
        run = CouncilRun(settings, sessions, run_id, job_id, gateway, caveat, aliases, weighted)
    except BaseException:  # not sitting after all: its connections go with it
        engine.dispose()
        raise
    if opened is not None and run.bus is not None:
        await announce_job(run.bus, opened)
    try:
        return await _sit(
            run,
            roster,
            symbols,
            when,
            approval,
            stop_after,
            execute,
            min_reward_risk,
            max_positions,
            max_weight,
            approval_timeout_s,
        )
    except Exception as exc:  # the run ends failed with its cause in words, and so does Prefect
        cause = describe_failure(exc)
        get_run_logger().error("council run %s failed: %s", run_id, cause)
        await run.finish(RunStatus.FAILED, cause, stage="failed")
        return Failed(message=cause)
    finally:
        await run.close()
        engine.dispose()  # a backtest sits a hundred councils in one process


async def _sit(
    run: CouncilRun,
    roster: Roster,
    symbols: list[str],
    when: datetime,
    approval: Literal["manual", "auto"],
    stop_after: Literal["research", "pitches", "chairman"] | None,
    execute: bool,
    min_reward_risk: float,
    max_positions: int,
    max_weight: float,
    approval_timeout_s: int,
) -> State[Any]:
    """The stages in order, a barrier between them; the run's summary state."""
    run_id, sessions = run.run_id, run.sessions
    progress = await acreate_progress_artifact(
        progress=0.0, key=f"council-{run_id}-progress", description="Council stages done"
    )

    async def step(done: int) -> None:
        await aupdate_progress_artifact(artifact_id=progress, progress=100 * done / len(STAGES))

    try:
        snapshot = await snapshot_task(run, symbols, when)
        await step(1)
        research = await research_task(run, roster, unwalked(snapshot))
        await step(2)
        if stop_after == "research":
            return await _stopped_after(run, "research")
        candidates = await pitch_task(
            run,
            roster,
            unwalked(snapshot),
            unwalked(research),
            PitchRules(Decimal(str(min_reward_risk))),
        )
        await step(3)
        if stop_after == "pitches":
            return await _stopped_after(run, "pitches")
        review = await review_task(run, roster, unwalked(snapshot), unwalked(candidates))
        await step(4)
        chair_rules = ChairRules(max_positions, Decimal(str(max_weight)))
        decision_ids = await chair_task(
            run, roster, unwalked(snapshot), unwalked(candidates), unwalked(review), chair_rules
        )
        await step(5)
        if stop_after == "chairman":
            return await _stopped_after(run, "chairman", run.gateway.cache_only, decision_ids)
    except BudgetExceededError as exc:
        detail = f"stopped on its LLM budget: {exc}; no decision was made"
        await run.finish(RunStatus.CANCELED, detail, stage="budget")
        return Cancelled(message=detail)

    if approval == "auto" or not decision_ids:
        settled = await asyncio.to_thread(_settle, sessions, run_id, {}, "auto", None)
    else:
        await run.progress("approval", waiting_for="approval", decisions=len(decision_ids))
        answer = await apause_flow_run(
            wait_for_input=ApprovalInput,
            timeout=approval_timeout_s,
            poll_interval=get_settings().council_approval_poll_s,
            key=f"approval-{run_id}",
        )
        rejected = {i: answer.note for i in answer.reject}
        settled = await asyncio.to_thread(
            _settle, sessions, run_id, rejected, answer.approver, answer.note
        )
    await step(6)
    await acreate_table_artifact(
        table=settled, key=f"council-{run_id}-decisions", description=run.described("Decisions")
    )
    approved = [d["decision"] for d in settled if d["approved"]]
    orders: list[dict[str, Any]] = []
    failed: list[str] = []
    if execute and approved:
        await run.progress("execution")
        orders, failed = await execution_stage(approved, when, f"council-{run_id}-orders")
    await step(7)
    status = RunStatus.FAILED if failed else RunStatus.COMPLETED
    trouble = f"execution failed on {'; '.join(failed)}" if failed else None
    finished = await run.finish(status, trouble, decisions=len(settled))
    cost = finished.cost_usd.quantize(Decimal("0.000001"))
    summary = {
        "council_run_id": run_id,
        "as_of": when.isoformat(),
        "data_hash": snapshot.data_hash,
        "decisions": settled,
        "orders": orders,
        "cost_usd": str(cost),
    }
    if run.caveat:
        summary["may_know"] = run.caveat
    if failed:
        return Failed(message=trouble, data=summary)
    return Completed(message=f"{len(settled)} decisions, ${cost}", data=summary)


async def _stopped_after(
    run: CouncilRun, stage: str, replay: bool = False, decision_ids: list[int] | None = None
) -> State[Any]:
    """End the run after `stage`, as asked: completed, with what it has so far."""
    detail = f"stopped after {stage}, as asked"
    if replay:
        detail = "replay from the response cache: no model asked, nothing executed"
    elif run.job_id is None:
        detail = "a council backtest's sitting: decided here, executed by the backtest alone"
    if run.caveat:
        detail = f"{detail}; {run.caveat}"
    finished = await run.finish(RunStatus.COMPLETED, detail, stopped_after=stage)
    cost = str(finished.cost_usd.quantize(Decimal("0.000001")))
    summary: dict[str, Any] = {
        "council_run_id": run.run_id,
        "stopped_after": stage,
        "cost_usd": cost,
        "decisions": decision_ids or [],
    }
    if run.caveat:
        summary["may_know"] = run.caveat
    return Completed(message=detail, data=summary)


def _settle(
    sessions: sessionmaker[Session],
    run_id: int,
    rejected: dict[int, str | None],
    approver: str,
    note: str | None,
) -> list[dict[str, Any]]:
    with unit_of_work(sessions) as session:
        rows = q.settle_decisions(session, run_id, rejected, approver, note)
        pitches = {p.id: p for p in q.pitch_rows(session, run_id)}
        return [
            {
                "decision": r.id,
                "symbol": r.symbol,
                "action": str(r.action),
                "weight": str(r.target_weight),
                "entry": _str(pitches[r.pitch_id].entry_price) if r.pitch_id else None,
                "take_profit": _str(pitches[r.pitch_id].take_profit) if r.pitch_id else None,
                "stop_loss": _str(pitches[r.pitch_id].stop_loss) if r.pitch_id else None,
                "status": str(r.status),
                "approved": r.status is DecisionStatus.APPROVED,
            }
            for r in rows
        ]


def unwalked(value: T) -> T:
    """`value`, passed to a task without Prefect walking it. Prefect visits every element of
    every task argument looking for futures; a 482-symbol snapshot (its correlation matrix
    is 232 k numbers) cost ~1.1 s per task. The task receives `value` itself."""
    return cast(T, quote(value))


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
