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

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from prefect import flow
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
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries import council as q
from db.queries.bars import bar_coverage
from db.queries.llm_calls import SqlCallStore
from flows.council_tasks import (
    CouncilRun,
    chair_task,
    pitch_task,
    research_task,
    review_task,
    snapshot_task,
)
from flows.execution import execution_stage
from models.base import utcnow
from models.enums import DecisionStatus, RunStatus, Timeframe
from models.errors import BudgetExceededError
from models.ops import Job
from services.llm.budget import RunBudget
from services.llm.gateway import LLMGateway, ProviderLimits
from services.llm.offline import register_offline_provider
from services.settings import get_settings
from tasks.council.roster import Member, default_roster, roster_of
from tasks.council.validation import ChairRules, PitchRules

STAGES = ("snapshot", "research", "pitches", "review", "chairman", "approval", "execution")


class ApprovalInput(RunInput):
    """What an approver sends to resume a paused council: every proposed decision is
    approved except the ids in `reject`."""

    reject: list[int] = []
    note: str | None = None
    approver: str = "prefect-ui"


@flow(name="weekly-council", retries=0)
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
) -> State[Any]:
    """One council sitting for `as_of` (default: today); returns the run's summary.

    `members` seats a council of your own (roles analyst, pm and one chairman, each with a
    persona and a model); otherwise the standard council sits, on `models` (or LLM_MODELS)
    taken in turn, the offline analyst when there are none. With `execute`, the approved
    decisions are then sent to every configured account (flows/execution.py).
    """
    settings = get_settings()
    register_offline_provider()
    when = _as_of_instant(as_of)
    configured = [m for m in (models or settings.llm_models) if m != "offline"]
    roster = roster_of(members) if members else default_roster(configured)
    sessions = make_session_factory(make_engine(settings.database_url))
    with unit_of_work(sessions) as session:
        symbols = universe or sorted({c.symbol for c in bar_coverage(session, None, Timeframe.D1)})
        params = {
            "universe": symbols,
            "roster": [m.model_dump(mode="json") for m in roster.members],
            "approval": approval,
            "max_positions": max_positions,
            "max_weight": max_weight,
            "min_reward_risk": min_reward_risk,
        }
        budget = Decimal(str(budget_usd)) if budget_usd is not None else None
        council = q.run_for_flow(session, str(current_flow_run.id), when, budget, params)
        job = Job(
            type="council",
            status=RunStatus.RUNNING,
            params={"council_run_id": council.id, **params},
            flow_run_id=str(current_flow_run.id),
            started_at=utcnow(),
        )
        session.add(job)
        session.flush()
        run_id, job_id = council.id, job.id
    gateway = LLMGateway(
        SqlCallStore(sessions),
        budget=RunBudget(budget) if budget is not None else None,
        limits=ProviderLimits(settings.llm_concurrency),
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
    )
    run = CouncilRun(settings, run_id, job_id, gateway)
    progress = await acreate_progress_artifact(
        progress=0.0, key=f"council-{run_id}-progress", description="Council stages done"
    )

    async def step(done: int) -> None:
        await aupdate_progress_artifact(artifact_id=progress, progress=100 * done / len(STAGES))

    try:
        snapshot = await snapshot_task(run, symbols, when)
        await step(1)
        research = await research_task(run, roster, snapshot)
        await step(2)
        candidates = await pitch_task(
            run, roster, snapshot, research, PitchRules(Decimal(str(min_reward_risk)))
        )
        await step(3)
        review = await review_task(run, roster, snapshot, candidates)
        await step(4)
        chair_rules = ChairRules(max_positions, Decimal(str(max_weight)))
        decision_ids = await chair_task(run, roster, snapshot, candidates, review, chair_rules)
        await step(5)
    except BudgetExceededError as exc:
        detail = f"stopped on its LLM budget: {exc}; no decision was made"
        with unit_of_work(sessions) as session:
            q.finish_run(session, run_id, RunStatus.CANCELED, detail)
        await run.progress("budget", RunStatus.CANCELED, detail=detail)
        await run.close()
        return Cancelled(message=detail)

    if approval == "auto" or not decision_ids:
        settled = _settle(sessions, run_id, {}, "auto", None)
    else:
        answer = await apause_flow_run(
            wait_for_input=ApprovalInput, timeout=approval_timeout_s, key=f"approval-{run_id}"
        )
        settled = _settle(
            sessions, run_id, {i: answer.note for i in answer.reject}, answer.approver, answer.note
        )
    await step(6)
    await acreate_table_artifact(
        table=settled, key=f"council-{run_id}-decisions", description="Decisions"
    )
    approved = [d["decision"] for d in settled if d["approved"]]
    orders: list[dict[str, Any]] = []
    failed: list[str] = []
    if execute and approved:
        await run.progress("execution")
        orders, failed = await execution_stage(approved, when, f"council-{run_id}-orders")
    await step(7)
    with unit_of_work(sessions) as session:
        finished = q.finish_run(session, run_id, RunStatus.COMPLETED)
        cost = finished.cost_usd.quantize(Decimal("0.000001"))
    summary = {
        "council_run_id": run_id,
        "as_of": when.isoformat(),
        "data_hash": snapshot.data_hash,
        "decisions": settled,
        "orders": orders,
        "cost_usd": str(cost),
    }
    await run.progress("done", RunStatus.COMPLETED, decisions=len(settled), cost_usd=str(cost))
    await run.close()
    if failed:
        return Failed(message=f"execution failed on {'; '.join(failed)}", data=summary)
    return Completed(message=f"{len(settled)} decisions, ${cost}", data=summary)


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


def _as_of_instant(as_of: date | datetime | None) -> datetime:
    """A date means its end (the close is known); default today, UTC."""
    if isinstance(as_of, datetime):
        return as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    day = as_of or datetime.now(UTC).date()
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC)


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
