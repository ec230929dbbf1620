"""Jobs as flow runs: the state hooks that keep a job row in step with its flow run, and
`python -m flows.jobs JOB_ID`, the worker process the realtime server starts per job.

The hooks are declared on the flows themselves, so they run wherever the flow
runs: in that worker process, or on a Prefect worker when the job went through
a deployment. They find the job by the flow's `job_id` parameter. Each change
is written to the `jobs` row and, with Redis, announced on `jobs:updates`
(without Redis the realtime process polls the table).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from prefect.client.schemas.objects import FlowRun, State

from db.engine import make_engine, make_session_factory, unit_of_work
from models.base import utcnow
from models.bus import JOBS_UPDATES, BusMessage
from models.enums import JobType, RunStatus
from models.ops import Job
from services.bus import BusUnavailableError, make_bus
from services.log_setup import configure_logging
from services.settings import get_settings

logger = logging.getLogger(__name__)

FINISHED = {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}


def job_status(state: State[Any]) -> RunStatus:
    if state.is_completed():
        return RunStatus.COMPLETED
    if state.is_cancelled():
        return RunStatus.CANCELED
    if state.is_failed() or state.is_crashed():
        return RunStatus.FAILED
    if state.is_scheduled() or state.is_pending():
        return RunStatus.PENDING
    return RunStatus.RUNNING


async def follow_job(flow: object, flow_run: FlowRun, state: State[Any]) -> None:
    """A state hook: move the job named by the run's `job_id` parameter to `state`."""
    job_id = flow_run.parameters.get("job_id")
    if not isinstance(job_id, int):
        return  # a run nobody asked for through the API (a schedule, the CLI)
    data = await asyncio.to_thread(update_job, job_id, state, str(flow_run.id))
    redis_url = get_settings().redis_url
    if data is not None and redis_url:
        await _announce(redis_url, data)


def update_job(job_id: int, state: State[Any], flow_run_id: str | None) -> dict[str, Any] | None:
    """Write the state to the job row; the change to announce, or None if there is none."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None or job.status in FINISHED:
                return None  # a late hook must not reopen a finished job
            job.status = job_status(state)
            job.flow_run_id = job.flow_run_id or flow_run_id
            now = utcnow()
            if job.status is RunStatus.RUNNING and job.started_at is None:
                job.started_at = now
            if job.status in FINISHED:
                job.finished_at = now
                if job.status is not RunStatus.COMPLETED:
                    job.error = state.message or state.name
            data = {
                "id": job.id,
                "type": job.type,
                "status": str(job.status),
                "error": job.error,
                "flow_run_id": job.flow_run_id,
                "state": state.name,
            }
    finally:
        engine.dispose()
    return data


async def _announce(redis_url: str, data: dict[str, Any]) -> None:
    bus = make_bus(redis_url)
    try:
        await bus.publish(JOBS_UPDATES, BusMessage(type="job.updated", data=data))
    except BusUnavailableError:  # the row has it; only the live push is lost
        logger.warning("jobs:updates unreachable; job %s not announced", data["id"])
    finally:
        await bus.close()


JOB_HOOKS: dict[str, Any] = {
    "on_running": [follow_job],
    "on_completion": [follow_job],
    "on_failure": [follow_job],
    "on_cancellation": [follow_job],
    "on_crashed": [follow_job],
}


def run_job(job_id: int) -> int:
    """Run job `job_id`'s flow here, to its end; the exit code says how it ended."""
    from flows.backtest import backtest
    from flows.weekly_council import weekly_council

    settings = get_settings()
    engine = make_engine(settings.database_url)
    with unit_of_work(make_session_factory(engine)) as session:
        job = session.get(Job, job_id)
        if job is None:
            logger.error("job %s does not exist", job_id)
            return 2
        kind, params = JobType(job.type), dict(job.params)
    engine.dispose()
    if kind is JobType.BACKTEST:
        state: State[Any] = backtest(**params, job_id=job_id, return_state=True)
        return 0 if state.is_completed() else 1
    flows = {JobType.COUNCIL: weekly_council, JobType.RESEARCH: weekly_council}

    async def run() -> State[Any]:
        state: State[Any] = await flows[kind](**params, job_id=job_id, return_state=True)
        return state

    return 0 if asyncio.run(run()).is_completed() else 1


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(run_job(int(sys.argv[1])))


if __name__ == "__main__":
    main()
