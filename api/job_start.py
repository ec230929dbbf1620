"""Starting a job: the one path `POST /api/jobs`, `/research/generate`,
`/pitches/generate` and `/council/synthesize` share.

The job row and its audit event are committed first, then the flow run is
started (`runtime.jobs.launch`): a worker or child process that looks the
job up must find it. A launch that fails marks the job failed, with why,
and the request answers 503.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from sqlalchemy import delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.auth import Principal
from db.engine import transaction
from db.queries.audit import record_event
from db.queries.bar_coverage import bar_coverage
from db.queries.instruments import instrument_exists
from db.queries.jobs import create_job, get_job
from db.queries.tokens import ensure_user
from models.enums import Timeframe
from models.errors import ConfigurationError, InvalidInputError, JobLaunchError
from models.jobs import (
    BacktestJob,
    CouncilBacktestJob,
    CouncilJob,
    JobOut,
    PatternScanJob,
    ResearchJob,
    SentimentJob,
    SuggestionJob,
    TrainingJob,
)
from models.ops import AuditEvent, Job
from realtime.runtime import Runtime
from services.settings import Settings
from tasks.council.week import council_day

JobRequestBody = (
    CouncilJob
    | ResearchJob
    | BacktestJob
    | TrainingJob
    | PatternScanJob
    | SuggestionJob
    | SentimentJob
    | CouncilBacktestJob
)


async def start_job(runtime: Runtime, request: JobRequestBody, caller: Principal) -> JobOut:
    if isinstance(request, CouncilBacktestJob):
        _check_account(runtime.settings, request)
    recorded = await asyncio.to_thread(_record, runtime, request, caller)
    try:
        await runtime.jobs.launch(recorded.id, request.type)
    except JobLaunchError:  # not started: undo the record, so the 503 did nothing
        await asyncio.to_thread(transaction, runtime.sessions, lambda s: _discard(s, recorded.id))
        raise
    try:
        return await asyncio.to_thread(_read, runtime, recorded.id)
    except SQLAlchemyError:  # started: answer it as recorded rather than an error
        return recorded


def _record(runtime: Runtime, request: JobRequestBody, caller: Principal) -> JobOut:
    return transaction(runtime.sessions, lambda session: _write(session, request, caller))


def _check_parameter_sets(request: BacktestJob) -> None:
    """Refuse a backtest whose parameters cannot run (unknown, out of range, no meaningful
    set in a sweep) before its job exists, rather than as a job that fails."""
    from tasks.backtest.sweep import parameter_sets  # numpy and the kernels: backtests only

    try:
        parameter_sets(request.params.strategy, request.params.params)
    except InvalidInputError as error:
        raise InvalidInputError("body.params.params", error.message) from error


def _check_training(session: Session, request: TrainingJob) -> None:
    """Refuse a training job that cannot run: torch absent, or no daily bars stored."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise InvalidInputError(
            "body.type", "training needs the ml extra (pip install -e '.[ml]'): torch is absent"
        )
    if not request.params.symbols and not bar_coverage(session, None, Timeframe.D1):
        raise InvalidInputError("body.params.symbols", "no daily bars stored: import some first")


def _check_stored(session: Session, params: dict[str, Any]) -> None:
    """Refuse a scan or suggestion over days no daily bar covers, before its job exists."""
    coverage = bar_coverage(session, params.get("symbols"), Timeframe.D1)
    if not coverage:
        raise InvalidInputError("body.params.symbols", "no daily bars stored: import some first")
    first = min(c.first for c in coverage).date()
    last = max(c.last for c in coverage).date()
    for field in ("as_of", "end", "start"):
        if (day := params.get(field)) is not None and not first <= date.fromisoformat(day) <= last:
            raise InvalidInputError(
                f"body.params.{field}", f"{day} is outside the stored daily bars ({first}..{last})"
            )


def _check_instruments(session: Session, params: dict[str, Any]) -> None:
    """Refuse sentiment for a symbol that is not an instrument (news names instruments)."""
    if unknown := [s for s in params.get("symbols") or [] if not instrument_exists(session, s)]:
        raise InvalidInputError("body.params.symbols", f"not an instrument: {', '.join(unknown)}")


def _check_account(settings: Settings, request: CouncilBacktestJob) -> None:
    """Refuse a council backtest sized for an account this server does not configure: its
    worker has the same settings, so the flow would fail on it at once."""
    if (name := request.params.account) is None:
        return
    try:
        settings.account(name)
    except ConfigurationError as error:
        raise InvalidInputError("body.params.account", str(error)) from None


def _check_range(session: Session, request: CouncilBacktestJob, universe: list[str] | None) -> None:
    """Refuse a council backtest whose start or end the stored daily bars (of its universe)
    do not cover, as its flow would, before its job exists."""
    council_day(session, request.params.start, universe, "body.params.start")
    council_day(session, request.params.end, universe, "body.params.end")


def _write(session: Session, request: JobRequestBody, caller: Principal) -> JobOut:
    params = request.flow_parameters()
    council = CouncilJob | ResearchJob | CouncilBacktestJob
    field = "universe" if isinstance(request, council) else "symbols"
    if isinstance(request, SentimentJob):
        _check_instruments(session, params)
    elif universe := params.get(field):
        stored = {c.symbol for c in bar_coverage(session, universe, Timeframe.D1)}
        if missing := [s for s in universe if s not in stored]:
            raise InvalidInputError(
                f"body.params.{field}", f"no daily bars for {', '.join(missing)}"
            )
    if isinstance(request, BacktestJob):  # a parameter set that cannot run is refused now
        _check_parameter_sets(request)
    elif isinstance(request, TrainingJob):
        _check_training(session, request)
    elif isinstance(request, PatternScanJob | SuggestionJob):
        _check_stored(session, params)
    elif isinstance(request, CouncilBacktestJob):
        _check_range(session, request, params.get(field))
    elif isinstance(request, CouncilJob | ResearchJob):  # the week is fixed now, and shown
        universe = params.get(field)
        asked = request.params.as_of
        params["as_of"] = council_day(session, asked, universe, "body.params.as_of").day.isoformat()
    user = ensure_user(session, caller.actor)
    job = create_job(session, str(request.type), params, caller.token_id, user.id)
    record_event(
        session,
        **caller.audit(),
        event="job.requested",
        entity_type="job",
        entity_id=job.id,
        after={"type": job.type, "params": params},
    )
    return JobOut.model_validate(job)


def _discard(session: Session, job_id: int) -> None:
    session.execute(
        delete(AuditEvent).where(
            AuditEvent.event == "job.requested",
            AuditEvent.entity_type == "job",
            AuditEvent.entity_id == str(job_id),
        )
    )
    session.execute(delete(Job).where(Job.id == job_id))


def _read(runtime: Runtime, job_id: int) -> JobOut:
    with runtime.read_sessions() as session:
        return JobOut.model_validate(get_job(session, job_id))
