"""Reading the council's research: by run, the newest, one report, the calendar."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from models.council import CouncilRun, ResearchReport
from models.enums import RunStatus
from models.errors import NotFoundError
from models.ops import LLMCall


def latest_run_with_research(session: Session, *, completed: bool) -> CouncilRun:
    """The newest run that wrote research (only completed runs if `completed`)."""
    stmt = select(CouncilRun).where(exists().where(ResearchReport.run_id == CouncilRun.id))
    if completed:
        stmt = stmt.where(CouncilRun.status == RunStatus.COMPLETED)
    run = session.scalar(stmt.order_by(CouncilRun.id.desc()).limit(1))
    if run is None:
        which = "completed " if completed else ""
        raise NotFoundError(f"no {which}council run has research yet")
    return run


def runs_with_report_counts(
    session: Session,
    *,
    since: datetime | None,
    until: datetime | None,
) -> list[tuple[CouncilRun, int]]:
    """Council runs newest as-of first (`since`/`until` on as_of), each with its notes count.

    Unpaged: the caller pages the weeks they fall in, and a council sits about once a week."""
    notes = (
        select(func.count())
        .where(ResearchReport.run_id == CouncilRun.id)
        .correlate(CouncilRun)
        .scalar_subquery()
    )
    stmt = select(CouncilRun, notes)
    if since is not None:
        stmt = stmt.where(CouncilRun.as_of >= since)
    if until is not None:
        stmt = stmt.where(CouncilRun.as_of < until)
    stmt = stmt.order_by(CouncilRun.as_of.desc(), CouncilRun.id.desc())
    return [(run, int(count)) for run, count in session.execute(stmt)]


def report_with_call(session: Session, report_id: int) -> tuple[ResearchReport, LLMCall | None]:
    """A research report and the LLM call that wrote it (None for one stored without)."""
    report = session.get(ResearchReport, report_id)
    if report is None:
        raise NotFoundError(f"no research report {report_id}")
    call = session.get(LLMCall, report.llm_call_id) if report.llm_call_id else None
    return report, call
