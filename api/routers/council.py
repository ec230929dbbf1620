"""The council: its runs, each decision's chain, its spend, starting one and approving one."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from sqlalchemy.orm import Session

from api.after_effect import record_after_effect
from api.auth import LLMSpender, Principal, Trader
from api.deps import ReadSession, RuntimeDep
from api.errors import problem_responses
from api.job_start import start_job
from api.pagination import Page, PageDep
from api.schemas.council import (
    ApprovalIn,
    ApprovalOut,
    CostLineOut,
    CostsOut,
    CouncilOut,
    CouncilRunOut,
    DecisionChainOut,
    DecisionOut,
    StageCostOut,
    StageOut,
)
from db.queries import council as q
from db.queries.audit import record_event
from db.queries.llm_calls import run_costs
from models.enums import DecisionStatus, JobType, RunStatus
from models.errors import InvalidInputError, NotFoundError
from models.jobs import CouncilJob, CouncilParams, JobOut
from models.ops import Job
from realtime.runtime import Runtime
from services.council_approval import resume_council
from tasks.council.stage_report import run_report

PAUSE_WAIT_S = 15.0

router = APIRouter(prefix="/api/council", tags=["council"])

RunId = Annotated[int, Path(ge=1, le=2**53, description="Council run id.")]


@router.get("", responses=problem_responses(401, 403, 422))
def council_runs(
    session: ReadSession,
    page: PageDep,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
) -> Page[CouncilRunOut]:
    """Council runs newest first by creation (`since`/`until` on it); an empty page before
    the first sitting, where `/current` answers 404."""
    rows = q.runs(
        session,
        status=status,
        since=page.since,
        until=page.until,
        limit=page.fetch,
        offset=page.offset,
    )
    return Page.of([CouncilRunOut.model_validate(row) for row in rows], page)


@router.get("/current")
def current_council(session: ReadSession) -> CouncilOut:
    """The newest council run, its decisions, and whether it waits for approval."""
    return _council(session, q.latest_run(session).id, chains=False)


@router.post("/synthesize", status_code=202)
async def synthesize(
    caller: LLMSpender,
    runtime: RuntimeDep,
    body: Annotated[
        CouncilParams,
        Body(openapi_examples={"week": {"value": {"as_of": "2020-01-03", "approval": "manual"}}}),
    ],
) -> JobOut:
    """Sit the whole council (research, pitches, review, chairman) as a job; same as
    `POST /api/jobs {"type": "council"}`. With approval manual it pauses for
    `POST /api/council/{run_id}/approve`."""
    return await start_job(runtime, CouncilJob(type=JobType.COUNCIL, params=body), caller)


@router.get("/{run_id}")
def council_run(run_id: RunId, session: ReadSession) -> CouncilOut:
    """A council run with its audit chain: for each decision, its pitch, the anonymous
    reviews, the research, every LLM call behind it, and its orders and fills. `stages` says
    how each stage ended and how each member answered (answered, repaired, abstained with
    its cause); `why_no_decision` sums that up for a run that decided nothing."""
    return _council(session, run_id, chains=True)


@router.get("/{run_id}/costs")
def council_costs(run_id: RunId, session: ReadSession) -> CostsOut:
    """Tokens and dollars by stage (`stages`, in the council's order) and by stage, member
    and model (`lines`); cache hits cost $0."""
    run = q.get_run(session, run_id)
    lines = [CostLineOut.model_validate(line) for line in run_costs(session, run_id)]
    return CostsOut(
        run_id=run.id,
        budget_usd=run.budget_usd,
        cost_usd=sum((line.cost_usd for line in lines), Decimal(0)),
        prompt_tokens=sum(line.prompt_tokens for line in lines),
        completion_tokens=sum(line.completion_tokens for line in lines),
        stages=_by_stage(lines),
        lines=lines,
    )


STAGE_ORDER = ("research", "pitch", "review", "chairman")


def _by_stage(lines: list[CostLineOut]) -> list[StageCostOut]:
    stages: dict[str, list[CostLineOut]] = {}
    for line in lines:
        stages.setdefault(line.stage, []).append(line)
    rank = {stage: i for i, stage in enumerate(STAGE_ORDER)}
    order = sorted(stages, key=lambda s: (rank.get(s, len(rank)), s))
    return [
        StageCostOut(
            stage=stage,
            calls=sum(x.calls for x in stages[stage]),
            cache_hits=sum(x.cache_hits for x in stages[stage]),
            prompt_tokens=sum(x.prompt_tokens for x in stages[stage]),
            completion_tokens=sum(x.completion_tokens for x in stages[stage]),
            max_prompt_tokens=max(x.max_prompt_tokens for x in stages[stage]),
            cost_usd=sum((x.cost_usd for x in stages[stage]), Decimal(0)),
        )
        for stage in order
    ]


@router.post("/{run_id}/approve", status_code=202)
async def approve_council(
    run_id: RunId,
    caller: Trader,
    runtime: RuntimeDep,
    body: Annotated[ApprovalIn, Body()] = ApprovalIn(),  # noqa: B008 (an immutable default)
) -> ApprovalOut:
    """Resume the run's paused flow with the same input `aitrader council approve` sends:
    every proposed decision is approved except `reject`. The flow settles the decisions
    and executes the approved ones; follow it on `job_updates`. 409 if it is not paused."""
    flow_run_id, proposed, awaiting = await asyncio.to_thread(_approvable, runtime, run_id, body)
    answer = {"reject": sorted(set(body.reject)), "note": body.note, "approver": caller.actor}
    await resume_council(flow_run_id, run_id, answer, wait_s=PAUSE_WAIT_S if awaiting else 0.0)
    await record_after_effect(
        runtime.sessions,
        lambda session: _audit_approval(session, run_id, proposed, body, caller),
        what="council.approval_sent",
        run_id=run_id,
    )
    rejected = sorted(set(body.reject))
    return ApprovalOut(
        run_id=run_id,
        flow_run_id=flow_run_id,
        approver=caller.actor,
        approve=sorted(set(proposed) - set(rejected)),
        reject=rejected,
    )


def _council(session: ReadSession, run_id: int, *, chains: bool) -> CouncilOut:
    run = q.get_run(session, run_id)
    job = session.get(Job, run.job_id) if run.job_id is not None else None
    stage = (job.result or {}).get("stage") if job is not None else None
    decisions = q.decision_rows(session, run_id)
    report = run_report(session, run_id)
    return CouncilOut(
        run=CouncilRunOut.model_validate(run),
        job_status=job.status if job is not None else None,
        stage=stage if isinstance(stage, str) else None,
        waiting_for_approval=run.status is RunStatus.RUNNING and stage == "approval",
        decisions=[DecisionOut.model_validate(d) for d in decisions],
        chains=[
            DecisionChainOut.model_validate(q.audit_chain(session, d.id), from_attributes=True)
            for d in decisions
        ]
        if chains
        else [],
        stages=[StageOut.model_validate(stage) for stage in report.stages],
        why_no_decision=list(report.why_no_decision),
    )


def _approvable(runtime: Runtime, run_id: int, body: ApprovalIn) -> tuple[str, list[int], bool]:
    """The run's flow run, its proposed decisions, and whether it says it awaits approval."""
    with runtime.read_sessions() as session:
        run = q.get_run(session, run_id)
        proposed = [
            d.id for d in q.decision_rows(session, run_id) if d.status is DecisionStatus.PROPOSED
        ]
        if run.flow_run_id is None:
            raise NotFoundError(f"council run {run_id} has no Prefect flow run")
        if unknown := sorted(set(body.reject) - set(proposed)):
            raise InvalidInputError(
                "body.reject", f"council run {run_id} has no proposed decisions {unknown}"
            )
        job = session.get(Job, run.job_id) if run.job_id is not None else None
        awaiting = job is not None and (job.result or {}).get("stage") == "approval"
        return run.flow_run_id, proposed, awaiting


def _audit_approval(
    session: Session, run_id: int, proposed: list[int], body: ApprovalIn, caller: Principal
) -> None:
    record_event(
        session,
        **caller.audit(),
        event="council.approval_sent",
        entity_type="council_run",
        entity_id=run_id,
        before={"proposed": proposed},
        after={"reject": sorted(set(body.reject)), "note": body.note},
    )
