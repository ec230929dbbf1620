"""A job's lifecycle and its council run's, owned here: every status change of a `jobs` or
`council_runs` row goes through these functions, and nothing else writes those columns.

    pending --start--> running --stage--> running ... --finish--> completed | failed | canceled

* A finished job never moves again: a late state hook, a supervisor noticing a
  dead worker, and the flow's own last word may all arrive, in any order; the
  first to finish the job wins and the others are no-ops (they return None).
* A failed or canceled job always has an `error` in words (`describe_failure`
  turns an exception into one line: the first real error, not its group).
* A council run ends with its job: finishing either finishes the other, in the
  same transaction, with the same status and cause. So no run is left
  `running` behind a job that failed, and `council show` tells the same story
  as `GET /api/jobs/{id}`.

Each function returns the `JobUpdate` to announce on `jobs:updates` (or None
when nothing changed); callers publish it after their transaction commits.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Collection
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.council import CouncilRun
from models.enums import RunStatus
from models.errors import NotFoundError, describe_failure
from models.jobs import JobUpdate
from models.ops import Job, LLMCall

FINISHED = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
Fact = str | int | float | bool | None
Change = Callable[[Session], "JobUpdate | None"]
_PREFECT_PREFIX = "Flow run encountered an exception: "


def create_job(
    session: Session, kind: str, params: dict[str, Any], token_id: int | None, user_id: int | None
) -> Job:
    """A pending job row; its flow run is started after the transaction commits."""
    job = Job(
        type=kind,
        status=RunStatus.PENDING,
        params=params,
        token_id=token_id,
        created_by=user_id,
    )
    session.add(job)
    session.flush()
    return job


def record_runner(
    session: Session,
    job_id: int,
    runner: str,
    flow_run_id: str | None = None,
    owner: dict[str, Any] | None = None,
) -> None:
    """Note how the job is run (process, deployment, cli), its flow run once known, and the
    process that owns its end (`job_owner()`): if that process dies on this machine, the
    realtime server ends the job for it (realtime/jobs.py `reconcile`)."""
    job = session.get(Job, job_id)
    if job is not None:
        job.runner = runner
        job.flow_run_id = job.flow_run_id or flow_run_id
        if owner is not None:
            job.result = {**(job.result or {}), "owner": owner}


def job_owner() -> dict[str, Any]:
    """This process, as the owner of a job's end."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def start_job(session: Session, job_id: int, *, flow_run_id: str | None = None) -> JobUpdate | None:
    """pending -> running (a running job just learns its flow run); None if finished."""
    job = _locked(session, job_id)
    if job is None or job.status in FINISHED:
        return None
    job.flow_run_id = job.flow_run_id or flow_run_id
    job.started_at = job.started_at or utcnow()
    if job.status is RunStatus.RUNNING:
        return None
    job.status = RunStatus.RUNNING
    return _update(session, job)


def record_stage(session: Session, job_id: int, stage: str, **facts: Any) -> JobUpdate | None:
    """The job reached `stage` (running); `facts` are kept in its result. None if finished."""
    job = _locked(session, job_id)
    if job is None or job.status in FINISHED:
        return None
    job.status = RunStatus.RUNNING
    job.started_at = job.started_at or utcnow()
    job.result = {**_settled(job.result), "stage": stage, **facts}
    return _update(session, job, facts)


def keep_result(
    session: Session, job_id: int, stage: str, result: dict[str, Any]
) -> JobUpdate | None:
    """Keep a flow's summary (any JSON: tables, lists) in the running job's result at
    `stage`; announced without it (an update carries flat facts). None if finished."""
    job = _locked(session, job_id)
    if job is None or job.status in FINISHED:
        return None
    job.result = {**_settled(job.result), **result, "stage": stage}
    return _update(session, job)


TRANSIENT = ("waiting_for",)
"""Facts of a stage that stop being true when the next stage (or the end) is reached."""


def _settled(result: dict[str, Any] | None) -> dict[str, Any]:
    """A job's result without the previous stage's transient facts: a completed council job
    said `waiting_for: approval` long after it was approved."""
    return {k: v for k, v in (result or {}).items() if k not in TRANSIENT}


def finish_job(
    session: Session,
    job_id: int,
    status: RunStatus,
    *,
    error: str | None = None,
    stage: str | None = None,
    **facts: Any,
) -> JobUpdate | None:
    """End the job (and its council run, if still open) as `status`; None if it had ended.

    `error` is required unless the job completed: a failure without a cause is a bug.
    """
    if status not in FINISHED:
        raise ValueError(f"{status} is not an end state")
    if status is not RunStatus.COMPLETED and not error:
        raise ValueError("a job that did not complete needs its cause")
    job = _locked(session, job_id)
    if job is None or job.status in FINISHED:
        return None
    job.status = status
    job.finished_at = utcnow()
    job.error = error if status is not RunStatus.COMPLETED else None
    job.result = {**_settled(job.result), **({"stage": stage} if stage else {}), **facts}
    for run in _open_runs_of(session, job.id):
        _close_run(session, run, status, error)
    return _update(session, job, facts)


def open_council_run(
    session: Session,
    *,
    job_id: int | None,
    owner: dict[str, Any] | None = None,
    flow_run_id: str,
    as_of: datetime,
    budget_usd: Decimal | None,
    params: dict[str, Any],
    own_job: bool = True,
) -> tuple[CouncilRun, JobUpdate | None]:
    """The council run of a flow run (created on its first execution) and its job, running.

    A council started from the CLI or a schedule has no job yet: one is made, so every
    council run is followed the same way. A council backtest's sitting (`own_job` False)
    gets none: the backtest's job follows it.
    """
    run = session.scalar(select(CouncilRun).where(CouncilRun.flow_run_id == flow_run_id))
    if run is None:
        run = CouncilRun(
            as_of=as_of,
            status=RunStatus.RUNNING,
            budget_usd=budget_usd,
            params=params,
            flow_run_id=flow_run_id,
            started_at=utcnow(),
        )
        session.add(run)
        session.flush()
    if not own_job and job_id is None:
        run.params = {**(run.params or {}), **params}
        return run, None
    job = _locked(session, job_id) if job_id is not None else None
    if job is None:
        job = Job(type="council", status=RunStatus.PENDING, params={}, flow_run_id=flow_run_id)
        session.add(job)
        session.flush()
        record_runner(session, job.id, "cli", flow_run_id, owner)
    job.params = {**job.params, "council_run_id": run.id, **params}
    job.flow_run_id = job.flow_run_id or flow_run_id
    run.job_id = job.id
    update = record_stage(session, job.id, "started", council_run_id=run.id)
    return run, update


def finish_council_run(
    session: Session, run_id: int, status: RunStatus, detail: str | None = None, **facts: Any
) -> tuple[CouncilRun, JobUpdate | None]:
    """End a council run and its job together; the run's cost is summed from its calls."""
    run = session.get(CouncilRun, run_id, with_for_update=True)
    if run is None:
        raise NotFoundError(f"no council run {run_id}")
    if run.status not in FINISHED:
        _close_run(session, run, status, detail)
    update = None
    if run.job_id is not None:
        error = detail if status is not RunStatus.COMPLETED else None
        update = finish_job(
            session,
            run.job_id,
            status,
            error=error,
            stage=facts.pop("stage", "done"),
            council_run_id=run.id,
            cost_usd=str(run.cost_usd),
            **facts,
        )
    return run, update


def fail_jobs(session: Session, job_ids: Collection[int], cause: str) -> list[JobUpdate]:
    """Fail each of `job_ids` not yet finished with `cause`; the changes made."""
    updates = [finish_job(session, i, RunStatus.FAILED, error=cause) for i in job_ids]
    return [u for u in updates if u is not None]


class FlowState(Protocol):
    """What a Prefect flow-run state tells (prefect.client.schemas.objects.State); spelled
    out here so the lifecycle reads states without importing Prefect."""

    name: str | None
    message: str | None
    data: Any

    def is_running(self) -> bool: ...
    def is_completed(self) -> bool: ...
    def is_cancelled(self) -> bool: ...
    def is_cancelling(self) -> bool: ...
    def is_failed(self) -> bool: ...
    def is_crashed(self) -> bool: ...


def job_change(job_id: int, state: FlowState, flow_run_id: str) -> Change | None:
    """What a flow run's `state` means for its job, as a change to apply; None if nothing."""
    if state.is_running():
        return lambda s: start_job(s, job_id, flow_run_id=flow_run_id)
    if state.is_completed():
        return lambda s: finish_job(s, job_id, RunStatus.COMPLETED)
    if state.is_cancelled() or state.is_cancelling():
        cause = state.message or "the flow run was cancelled"
        return lambda s: finish_job(s, job_id, RunStatus.CANCELED, error=cause)
    if state.is_failed() or state.is_crashed():
        cause = failure_cause(state)
        return lambda s: finish_job(s, job_id, RunStatus.FAILED, error=cause)
    return None


def failure_cause(state: FlowState) -> str:
    """The cause of a failed or crashed state in one line: the flow's exception when this
    process holds it (the flow ran here), else Prefect's message."""
    data = state.data
    exc = data if isinstance(data, BaseException) else getattr(data, "result", None)
    if isinstance(exc, BaseException):
        return describe_failure(exc)
    message = (state.message or state.name or "failed").strip().removeprefix(_PREFECT_PREFIX)
    first = message.splitlines()[0] if message else "failed"
    return f"the flow run crashed: {first}" if state.is_crashed() else first


# --- reads ---------------------------------------------------------------------------------


def unfinished_jobs(session: Session, *, runner: str | None = None) -> list[Job]:
    stmt = select(Job).where(Job.status.not_in(list(FINISHED))).order_by(Job.id)
    if runner is not None:
        stmt = stmt.where(Job.runner == runner)
    return list(session.scalars(stmt))


def jobs_to_watch(session: Session, after_id: int, watching: Collection[int]) -> list[Job]:
    """Jobs newer than `after_id`, plus the unfinished ones being watched, oldest first."""
    stmt = select(Job).order_by(Job.id)
    condition = Job.id > after_id
    if watching:
        condition = or_(condition, Job.id.in_(list(watching)))
    return list(session.scalars(stmt.where(condition)))


def newest_job_id(session: Session) -> int:
    return session.scalar(select(Job.id).order_by(Job.id.desc()).limit(1)) or 0


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job {job_id}")
    return job


def list_jobs(
    session: Session,
    *,
    kind: str | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Job]:
    """Newest first, by creation."""
    stmt = select(Job)
    if kind is not None:
        stmt = stmt.where(Job.type == kind)
    if status is not None:
        stmt = stmt.where(Job.status == status)
    if since is not None:
        stmt = stmt.where(Job.created_at >= since)
    if until is not None:
        stmt = stmt.where(Job.created_at < until)
    stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc()).offset(offset).limit(limit)
    return list(session.scalars(stmt))


def latest_job(session: Session, kind: str, **params: object) -> Job | None:
    """The newest job of `kind` whose params hold every given key and value."""
    for job in list_jobs(session, kind=kind, limit=200):
        if all(job.params.get(k) == v for k, v in params.items()):
            return job
    return None


def job_update(job: Job, facts: dict[str, Any] | None = None) -> JobUpdate:
    """What to announce about `job` as it stands (the poller's view, without Redis)."""
    stage = (job.result or {}).get("stage")
    council_run_id = job.params.get("council_run_id") if job.params else None
    return JobUpdate(
        id=job.id,
        type=job.type,
        status=job.status,
        stage=stage if isinstance(stage, str) else None,
        error=job.error,
        flow_run_id=job.flow_run_id,
        council_run_id=council_run_id if isinstance(council_run_id, int) else None,
        facts={k: v for k, v in (facts or {}).items() if isinstance(v, Fact)},
    )


# --- helpers -------------------------------------------------------------------------------


def _locked(session: Session, job_id: int) -> Job | None:
    """The job row, locked for this transaction on Postgres (SQLite's BEGIN IMMEDIATE
    already serialises writers), and refreshed: a stale identity-map copy must not decide."""
    return session.get(Job, job_id, with_for_update=True, populate_existing=True)


def _update(session: Session, job: Job, facts: dict[str, Any] | None = None) -> JobUpdate:
    session.flush()
    return job_update(job, facts)


def _open_runs_of(session: Session, job_id: int) -> list[CouncilRun]:
    stmt = select(CouncilRun).where(
        CouncilRun.job_id == job_id, CouncilRun.status.not_in(list(FINISHED))
    )
    return list(session.scalars(stmt.with_for_update()))


def _close_run(session: Session, run: CouncilRun, status: RunStatus, detail: str | None) -> None:
    run.status = status
    run.detail = detail
    run.finished_at = utcnow()
    calls = session.scalars(select(LLMCall.cost_usd).where(LLMCall.run_id == run.id))
    run.cost_usd = sum(calls, Decimal(0))
