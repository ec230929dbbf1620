"""`python -m flows.jobs JOB_ID`: the worker process the realtime server starts per job.

It runs the job's flow here, to its end; the flow's state hooks
(flows/job_hooks.py) keep the job row in step. Whatever stops the flow from
running at all (Prefect not starting, a bad parameter, an import error) would
leave no hook to tell, so it is caught here, at the process edge, and the job
ends `failed` with that cause in one line before the process exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from prefect.client.schemas.objects import State

from db.engine import make_engine, make_read_session_factory
from db.queries.jobs import failure_cause, finish_job
from flows.job_hooks import apply_change
from models.enums import JobType, RunStatus
from models.errors import describe_failure
from models.ops import Job
from services.log_setup import configure_logging
from services.settings import get_settings

logger = logging.getLogger(__name__)


def run_job(job_id: int) -> int:
    """Run job `job_id`'s flow here, to its end; the exit code says how it ended."""
    found = _load(job_id)
    if found is None:
        logger.error("job %s does not exist", job_id)
        return 2
    kind, params = found
    try:
        state = _run(kind, params, job_id)
    except Exception as exc:  # the process edge: the job must not be left running
        cause = describe_failure(exc)
        logger.error("job.failed", extra={"job_id": job_id, "cause": cause})
        asyncio.run(_fail(job_id, cause))
        return 1
    if state.is_completed():
        return 0
    # The hooks have ended the job; if a hook could not run, end it here with the cause.
    asyncio.run(_fail(job_id, failure_cause(state), _status_of(state)))
    return 1


def _run(kind: JobType, params: dict[str, Any], job_id: int) -> State[Any]:
    """The flow's final state. Imported here: a worker loads only the flow it runs."""
    if kind is JobType.BACKTEST:
        from flows.backtest import backtest

        state: State[Any] = backtest(**params, job_id=job_id, return_state=True)
        return state
    if kind is JobType.PATTERN_SCAN:
        from flows.pattern_scan import pattern_scan

        scanned: State[Any] = pattern_scan(**params, job_id=job_id, return_state=True)
        return scanned
    if kind is JobType.SUGGESTION:
        from flows.suggestion import suggestion

        suggested: State[Any] = suggestion(**params, job_id=job_id, return_state=True)
        return suggested
    if kind is JobType.SENTIMENT:
        from flows.sentiment import sentiment_analysis

        felt: State[Any] = sentiment_analysis(**params, job_id=job_id, return_state=True)
        return felt
    if kind is JobType.TRAINING:
        from flows.training import training

        trained: State[Any] = training(**params, job_id=job_id, return_state=True)
        return trained
    if kind is JobType.COUNCIL_BACKTEST:  # an async flow, as the council's
        from flows.council_backtest import council_backtest

        async def judge() -> State[Any]:
            judged: State[Any] = await council_backtest(**params, job_id=job_id, return_state=True)
            return judged

        return asyncio.run(judge())
    from flows.weekly_council import weekly_council

    async def sit() -> State[Any]:
        council: State[Any] = await weekly_council(**params, job_id=job_id, return_state=True)
        return council

    return asyncio.run(sit())


async def _fail(job_id: int, cause: str, status: RunStatus = RunStatus.FAILED) -> None:
    await apply_change(lambda s: finish_job(s, job_id, status, error=cause))


def _status_of(state: State[Any]) -> RunStatus:
    return RunStatus.CANCELED if state.is_cancelled() else RunStatus.FAILED


def _load(job_id: int) -> tuple[JobType, dict[str, Any]] | None:
    engine = make_engine(get_settings().database_url)
    try:
        with make_read_session_factory(engine)() as session:
            job = session.get(Job, job_id)
            return None if job is None else (JobType(job.type), dict(job.params))
    finally:
        engine.dispose()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(run_job(int(sys.argv[1])))


if __name__ == "__main__":
    main()
