"""Council research: current and past reports, the prompt, generation jobs, verification.

Research is the council's first stage (tasks/council/stages.py). Generating it
is a council job that stops after research (docs/decisions/0010).

`POST /verify` is a read for anyone (an automatic check of a report against its
data) and a write only when its body carries a person's `verdict`: then the
caller must be a trader, checked in the handler since the route table says
viewer, and the verdict and its audit event are committed together after the
check, so a request that fails writes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Body, Path, Query
from sqlalchemy.orm import Session

from api.auth import LLMSpender, Principal, Viewer
from api.deps import ReadSession, RuntimeDep, SettingsDep
from api.job_start import start_job
from api.pagination import Page, PageDep
from api.params import AsOfQuery, SymbolsQuery, day_or_newest, stored_universe
from api.schemas.council import LLMCallOut
from api.schemas.research import (
    FigureOut,
    PromptOut,
    ReportDetailOut,
    ReportOut,
    ResearchJobOut,
    ResearchWeekOut,
    RunLineOut,
    RunResearchOut,
    VerdictOut,
    VerifyIn,
    VerifyOut,
)
from db.engine import transaction
from db.queries import council as q
from db.queries.audit import record_event
from db.queries.jobs import get_job, latest_job
from db.queries.research import (
    add_verdict,
    latest_run_with_research,
    report_verdicts,
    report_with_call,
    run_of_job,
    runs_with_report_counts,
)
from models.council import CouncilRun
from models.enums import JobType, ReportVerdict, Role
from models.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from models.jobs import JobOut, ResearchJob, ResearchParams
from models.llm_outputs import ResearchPack
from services.llm.hashing import prompt_hash
from tasks.council.roster import default_roster, seat_models
from tasks.research_check import check_figures

router = APIRouter(prefix="/api/research", tags=["research"])

RESEARCH_JOBS = frozenset({JobType.RESEARCH, JobType.COUNCIL})
"""Job types that sit a council, and so write research."""


@router.get("/current")
def current_research(session: ReadSession) -> RunResearchOut:
    """The research of the newest council run that has some, whatever its status."""
    return _run_research(session, latest_run_with_research(session, completed=False).id)


@router.get("/latest")
def latest_research(session: ReadSession) -> RunResearchOut:
    """The research of the newest completed council run."""
    return _run_research(session, latest_run_with_research(session, completed=True).id)


@router.get("/history")
def research_history(session: ReadSession, page: PageDep) -> Page[ResearchWeekOut]:
    """A calendar of council runs by ISO week, newest week first; a page is `limit` weeks.
    `since`/`until` apply to the runs' as-of. A run's week is that of the day it decided
    on (its as-of is the instant that day ended)."""
    rows = runs_with_report_counts(session, since=page.since, until=page.until)
    weeks = _weeks(rows)
    return Page.of(weeks[page.offset : page.offset + page.fetch], page)


@router.get("/report/{report_id}")
def research_report(
    report_id: Annotated[int, Path(ge=1, le=2**53)], session: ReadSession
) -> ReportDetailOut:
    """One note with the LLM call that wrote it (model, tokens, cost, prompt hash) and the
    verdicts people gave on it (`POST /api/research/verify` with a `verdict`)."""
    report, call = report_with_call(session, report_id)
    return ReportDetailOut(
        **ReportOut.model_validate(report).model_dump(),
        llm_call=LLMCallOut.model_validate(call) if call is not None else None,
        verdicts=[VerdictOut.model_validate(v) for v in report_verdicts(session, report.id)],
    )


@router.get("/prompt")
def research_prompt(
    session: ReadSession,
    settings: SettingsDep,
    as_of: AsOfQuery = None,
    symbols: SymbolsQuery = None,
    analyst: Annotated[
        str | None, Query(max_length=64, description="An analyst's name; default the first.")
    ] = None,
    shard: Annotated[int, Query(ge=1, le=10_000, description="Which research call.")] = 1,
) -> PromptOut:
    """The exact messages the research stage would send an analyst for `as_of`, built from
    the point-in-time snapshot, screened and sharded to the analyst's model's window as
    tasks/council/research.py does: what a model is shown, without calling one.
    `prompt_hash` is the one an LLM call of these messages records; a model without
    structured output also gets the answer's schema as a first message."""
    # litellm (token counts, model facts) on first use, not with the realtime server.
    from services.llm.catalog import catalog_from_settings
    from services.llm.window import prompt_room
    from tasks.council.research import RESEARCH_TOKENS, plan_shards, shard_prompter
    from tasks.council.screen import screen, screen_rules

    catalog, models_file = catalog_from_settings(settings)
    configured = [m for m in settings.llm_models if m != "offline"]
    roster = seat_models(default_roster(configured), models_file.roster)
    member = next((a for a in roster.analysts if analyst in (None, a.name)), None)
    if member is None:
        names = ", ".join(a.name for a in roster.analysts)
        raise InvalidInputError(
            "query.analyst", f"no analyst {analyst!r} (the council has {names})"
        )
    universe = stored_universe(session, symbols)
    from tasks.market_snapshot import build_snapshot  # numpy and pandas: on first use

    snapshot = build_snapshot(session, universe, day_or_newest(session, as_of))
    screened = screen(snapshot, screen_rules(settings))
    prompt = shard_prompter(member, snapshot, len(screened.chosen))
    room = prompt_room(catalog.facts(member.model), ResearchPack, RESEARCH_TOKENS)
    shards = plan_shards(screened, prompt, room) if screened.chosen else []
    if not 1 <= shard <= len(shards):
        raise InvalidInputError(
            "query.shard", f"the analyst's research takes {len(shards)} calls, not {shard}"
        )
    messages = prompt(shards[shard - 1])
    return PromptOut(
        as_of=snapshot.as_of,
        analyst=member.name,
        model=member.model,
        data_hash=snapshot.data_hash,
        prompt_hash=prompt_hash(messages),
        messages=messages,
        response_schema=ResearchPack.model_json_schema(),
        shard=shard,
        shards=len(shards),
        symbols=shards[shard - 1],
        screened=len(screened.chosen),
    )


@router.post("/verify")
def verify_research(
    body: VerifyIn, caller: Viewer, session: ReadSession, runtime: RuntimeDep
) -> VerifyOut:
    """Check a report against the data its run saw: recompute the point-in-time snapshot
    and its hash, and find every figure the note gives as evidence among its symbol's
    metrics (the summary's reasoning, with derived numbers, is not checked).

    Without `verdict` this only reads. With one, the caller's verdict (`verified` or
    `disputed`, an optional `note`) is also recorded against the report, with who and
    when, and audited as `research.verdict_recorded`: that needs the trader role (403 for
    a viewer, before anything is read). A person's verdict is theirs to give: it is
    recorded whatever the automatic check found, and `verified` still reports the check."""
    if body.verdict is not None and not caller.role.allows(Role.TRADER):
        raise PermissionDeniedError(
            f"recording a verdict needs the {Role.TRADER} role; the token has {caller.role}"
        )
    report, _ = report_with_call(session, body.report_id)
    run = q.get_run(session, report.run_id)
    universe = (run.params or {}).get("universe") or [report.symbol]
    from tasks.market_snapshot import build_snapshot

    snapshot = build_snapshot(session, universe, run.as_of)
    metrics = next((m for m in snapshot.symbols if m.symbol == report.symbol), None)
    texts = [str(e) for e in report.findings.get("evidence", [])]
    figures = check_figures(texts, metrics) if metrics is not None else []
    unsupported = [f.text for f in figures if not f.matches]
    unchanged = run.data_hash == snapshot.data_hash
    verdict = None
    if (given := body.verdict) is not None:
        verdict = transaction(
            runtime.sessions, lambda s: _record_verdict(s, report.id, given, body.note, caller)
        )
    return VerifyOut(
        report_id=report.id,
        symbol=report.symbol,
        data_hash_recorded=run.data_hash,
        data_hash_recomputed=snapshot.data_hash,
        data_unchanged=unchanged,
        figures=[FigureOut.model_validate(f, from_attributes=True) for f in figures],
        unsupported=unsupported,
        verified=unchanged and metrics is not None and not unsupported,
        verdict=verdict,
    )


@router.post("/generate", status_code=202)
async def generate_research(
    caller: LLMSpender,
    runtime: RuntimeDep,
    body: Annotated[
        ResearchParams,
        Body(openapi_examples={"week": {"value": {"as_of": "2020-01-03"}}}),
    ],
) -> JobOut:
    """Start a research job: the council's research stage alone, for `as_of`. Follow it on
    `job_updates` or `GET /api/research/status`."""
    job = ResearchJob(type=JobType.RESEARCH, params=body, stop_after="research")
    return await start_job(runtime, job, caller)


@router.get("/status")
def research_status(session: ReadSession) -> JobOut:
    """The newest research job and where it stands."""
    job = latest_job(session, JobType.RESEARCH, stop_after="research")
    if job is None:
        raise NotFoundError("no research job yet: POST /api/research/generate")
    return JobOut.model_validate(job)


@router.get("/{job_id}")
def research_of_job(
    job_id: Annotated[int, Path(ge=1, le=2**53)], session: ReadSession
) -> ResearchJobOut:
    """A research job's results: the job as `GET /api/jobs/{id}` shows it and the research
    of the council run it sat (null until its flow opens the run). A council job sits one
    too, so it is answered the same way; 404 for any other job. Declared after the fixed
    paths (`/current`, `/status`, ...), which it would otherwise shadow."""
    job = get_job(session, job_id)
    if job.type not in RESEARCH_JOBS:
        raise NotFoundError(f"job {job_id} is a {job.type} job, not a research or council job")
    run = run_of_job(session, job.id)
    return ResearchJobOut(
        job=JobOut.model_validate(job),
        research=_run_research(session, run.id) if run is not None else None,
    )


def _record_verdict(
    session: Session, report_id: int, verdict: ReportVerdict, note: str | None, caller: Principal
) -> VerdictOut:
    row = add_verdict(
        session, report_id, verdict, note, actor=caller.actor, token_id=caller.token_id
    )
    record_event(
        session,
        **caller.audit(),
        event="research.verdict_recorded",
        entity_type="research_report",
        entity_id=report_id,
        after={"verdict_id": row.id, "verdict": str(verdict), "note": note},
    )
    return VerdictOut.model_validate(row)


def _run_research(session: Session, run_id: int) -> RunResearchOut:
    run = q.get_run(session, run_id)
    return RunResearchOut(
        run_id=run.id,
        as_of=run.as_of,
        status=run.status,
        data_hash=run.data_hash,
        reports=[ReportOut.model_validate(r) for r in q.research_rows(session, run.id)],
    )


def _weeks(rows: list[tuple[CouncilRun, int]]) -> list[ResearchWeekOut]:
    """Runs (newest first) grouped into their ISO weeks, keeping that order."""
    weeks: dict[date, list[RunLineOut]] = {}
    for run, reports in rows:
        day = (run.as_of - timedelta(microseconds=1)).date()
        monday = day - timedelta(days=day.weekday())
        weeks.setdefault(monday, []).append(
            RunLineOut(
                run_id=run.id,
                as_of=run.as_of,
                status=run.status,
                cost_usd=run.cost_usd,
                reports=reports,
            )
        )
    return [
        ResearchWeekOut(week=_iso_week(monday), starts=monday, runs=runs)
        for monday, runs in weeks.items()
    ]


def _iso_week(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"
