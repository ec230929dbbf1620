"""The state hooks that keep a job in step with its flow run, wherever the flow runs.

Declared on the flows themselves (`JOB_HOOKS`), so they run in the job's
worker process or on a Prefect worker alike. They find the job by the flow's
`job_id` parameter (a run nobody asked for through the API has none) and
move it through db/queries/jobs.py, the lifecycle's one owner:

* Running: the job starts (and learns its flow run).
* Completed / Cancelled / Failed / Crashed: the job ends so, with the cause
  of a failure in one line: the flow's exception as `describe_failure` puts
  it (the first real error, never `ExceptionGroup`), else Prefect's message.

A job the flow itself finished (the council ends its run and job together)
is not moved again: finishing is idempotent. With Redis each move is also
announced on `jobs:updates`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.schemas.objects import FlowRun, State

from db.engine import make_engine, make_session_factory, transaction
from db.queries.jobs import Change, job_change, keep_result, record_stage
from models.jobs import JobUpdate
from services.bus import make_bus
from services.bus.job_updates import announce_job
from services.settings import get_settings


async def follow_job(flow: object, flow_run: FlowRun, state: State[Any]) -> None:
    """A state hook: move the job named by the run's `job_id` parameter to `state`."""
    job_id = flow_run.parameters.get("job_id")
    if not isinstance(job_id, int):
        return
    change = job_change(job_id, state, str(flow_run.id))
    if change is None:
        return
    await apply_change(change)


async def apply_change(change: Change) -> JobUpdate | None:
    """Apply `change` in its own transaction (retried on conflicts) and announce it."""
    settings = get_settings()
    update = await asyncio.to_thread(_apply, settings.database_url, change)
    if update is not None and settings.redis_url:
        await _announce(settings.redis_url, update)
    return update


def record_result(job_id: int | None, stage: str, result: dict[str, Any]) -> None:
    """Keep a flow's summary in its job's result before the flow ends (no-op without a job):
    what GET /api/jobs/{id} and the Jobs view show of a training, scan or suggestion."""
    if job_id is None:
        return
    _apply(get_settings().database_url, lambda s: keep_result(s, job_id, stage, result))


def record_progress(job_id: int | None, stage: str, **facts: Any) -> None:
    """The running job is at `stage` with `facts` (done, total...): kept in its result and
    announced (no-op without a job). From a sync flow's task, where no event loop runs."""
    if job_id is None:
        return
    settings = get_settings()
    update = _apply(settings.database_url, lambda s: record_stage(s, job_id, stage, **facts))
    if update is not None and settings.redis_url:
        asyncio.run(_announce(settings.redis_url, update))


async def _announce(redis_url: str, update: JobUpdate) -> None:
    bus = make_bus(redis_url)
    try:
        await announce_job(bus, update)
    finally:
        await bus.close()


def _apply(database_url: str, change: Change) -> JobUpdate | None:
    engine = make_engine(database_url)
    try:
        return transaction(make_session_factory(engine), change)
    finally:
        engine.dispose()


JOB_HOOKS: dict[str, Any] = {
    "on_running": [follow_job],
    "on_completion": [follow_job],
    "on_failure": [follow_job],
    "on_cancellation": [follow_job],
    "on_crashed": [follow_job],
}
