"""The council's research: by run or job, the newest, one report, the calendar, and the
verdicts people give on reports (the one thing here that writes)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from models.council import CouncilRun, ResearchReport, ResearchVerdict
from models.enums import ReportVerdict, RunStatus
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


def run_of_job(session: Session, job_id: int) -> CouncilRun | None:
    """The council run a job sat (the newest, should a job ever have had two), or None when
    its flow has not opened one yet."""
    stmt = select(CouncilRun).where(CouncilRun.job_id == job_id)
    return session.scalar(stmt.order_by(CouncilRun.id.desc()).limit(1))


def calls_by_id(session: Session, call_ids: Collection[int]) -> list[LLMCall]:
    """The LLM calls of `call_ids` that exist, by id."""
    if not call_ids:
        return []
    return list(
        session.scalars(select(LLMCall).where(LLMCall.id.in_(list(call_ids))).order_by(LLMCall.id))
    )


def add_verdict(
    session: Session,
    report_id: int,
    verdict: ReportVerdict,
    note: str | None,
    *,
    actor: str,
    token_id: int | None,
) -> ResearchVerdict:
    """Record a person's verdict on a report; NotFoundError if the report is gone. Never
    commits: the caller records the audit event in the same transaction."""
    if session.get(ResearchReport, report_id) is None:
        raise NotFoundError(f"no research report {report_id}")
    row = ResearchVerdict(
        report_id=report_id, verdict=verdict, note=note, actor=actor[:100], token_id=token_id
    )
    session.add(row)
    session.flush()
    return row


def report_verdicts(session: Session, report_id: int) -> list[ResearchVerdict]:
    """Every verdict given on a report, oldest first: a later one does not erase an earlier."""
    stmt = select(ResearchVerdict).where(ResearchVerdict.report_id == report_id)
    return list(session.scalars(stmt.order_by(ResearchVerdict.id)))
