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

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.flow_runs import apause_flow_run
from prefect.input import RunInput
from prefect.runtime import flow_run as current_flow_run
from prefect.states import Cancelled, Completed
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries import council as q
from db.queries.bars import bar_coverage
from db.queries.llm_calls import SqlCallStore
from models.base import utcnow
from models.bus import JOBS_UPDATES, BusMessage
from models.enums import DecisionStatus, RunStatus, Timeframe
from models.errors import BudgetExceededError
from models.ops import AuditEvent, Job
from models.snapshot import MarketSnapshot
from services.bus import Bus, BusUnavailableError, make_bus
from services.llm.budget import RunBudget
from services.llm.gateway import LLMGateway, ProviderLimits
from services.llm.offline import register_offline_provider
from services.settings import Settings, get_settings
from tasks.council.aggregate import label_order
from tasks.council.roster import Member, Roster, default_roster, roster_of
from tasks.council.stages import (
    Candidate,
    ChairOutcome,
    ResearchOutcome,
    ReviewOutcome,
    chair_stage,
    pitch_stage,
    research_stage,
    review_stage,
)
from tasks.council.validation import ChairRules, PitchRules
from tasks.market_snapshot import build_snapshot

STAGES = ("snapshot", "research", "pitches", "review", "chairman", "approval")


class ApprovalInput(RunInput):
    """What an approver sends to resume a paused council: every proposed decision is
    approved except the ids in `reject`."""

    reject: list[int] = []
    note: str | None = None
    approver: str = "prefect-ui"


class _Run:
    """What the stages share: the database, the gateway and the run's ids."""

    def __init__(self, settings: Settings, run_id: int, job_id: int, gateway: LLMGateway) -> None:
        self.sessions: sessionmaker[Session] = make_session_factory(
            make_engine(settings.database_url)
        )
        self.run_id = run_id
        self.job_id = job_id
        self.gateway = gateway
        self.bus: Bus | None = make_bus(settings.redis_url) if settings.redis_url else None

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()

    async def progress(
        self, stage: str, status: RunStatus = RunStatus.RUNNING, **result: Any
    ) -> None:
        """Move the run's job row on and announce it on `jobs:updates` (with Redis: without
        it the realtime process polls the jobs table, having no way to hear this process)."""
        with unit_of_work(self.sessions) as session:
            job = session.get(Job, self.job_id)
            if job is None:
                return
            job.status = status
            job.result = {**(job.result or {}), "stage": stage, **result}
            if status in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED):
                job.finished_at = utcnow()
            data = {
                "id": job.id,
                "type": job.type,
                "status": str(job.status),
                "flow_run_id": job.flow_run_id,
                "council_run_id": self.run_id,
                "stage": stage,
                **{k: v for k, v in result.items() if isinstance(v, str | int | float | None)},
            }
        if self.bus is None:
            return
        try:
            await self.bus.publish(JOBS_UPDATES, BusMessage(type="job.updated", data=data))
        except BusUnavailableError:  # progress is also in the jobs row; the run goes on
            get_run_logger().warning("jobs:updates unreachable; stage %s not announced", stage)


@task(name="market-snapshot", cache_policy=NO_CACHE)
async def snapshot_task(run: _Run, universe: list[str], as_of: datetime) -> MarketSnapshot:
    with unit_of_work(run.sessions) as session:
        snapshot = build_snapshot(session, universe, as_of)
        q.get_run(session, run.run_id).data_hash = snapshot.data_hash
    await run.progress("snapshot", symbols=len(snapshot.symbols), data_hash=snapshot.data_hash)
    return snapshot


@task(name="research", cache_policy=NO_CACHE, tags=["llm"])
async def research_task(
    run: _Run, roster: Roster, snapshot: MarketSnapshot
) -> list[ResearchOutcome]:
    outcomes = await research_stage(run.gateway, roster, snapshot, run.run_id)
    with unit_of_work(run.sessions) as session:
        for o in outcomes:
            if o.pack is not None:
                notes = [n.model_dump(mode="json") for n in o.pack.notes]
                q.add_research(session, run.run_id, snapshot.as_of, o.member.name, notes, o.call_id)
    lines = [f"# Research as of {snapshot.as_of:%Y-%m-%d}", ""]
    for o in outcomes:
        if o.pack is None:
            lines.append(f"* **{o.member.name}** abstained: {o.error}")
        else:
            lines.append(f"* **{o.member.name}** ({o.member.model}): {o.pack.regime}")
            lines.extend(f"  * {v.sector}: {v.stance} — {v.reason}" for v in o.pack.sector_views)
    await acreate_markdown_artifact(
        markdown="\n".join(lines), key=f"council-{run.run_id}-research", description="Research"
    )
    await run.progress("research", packs=sum(o.pack is not None for o in outcomes))
    return outcomes


@task(name="pitches", cache_policy=NO_CACHE, tags=["llm"])
async def pitch_task(
    run: _Run,
    roster: Roster,
    snapshot: MarketSnapshot,
    research: list[ResearchOutcome],
    rules: PitchRules,
) -> list[Candidate]:
    pitches, abstentions = await pitch_stage(
        run.gateway, roster, snapshot, research, run.run_id, rules
    )
    candidates = []
    with unit_of_work(run.sessions) as session:
        for p in pitches:
            row = q.add_pitch(
                session,
                run.run_id,
                p.member.name,
                p.pitch.model_dump(mode="json"),
                p.call_id,
                p.dropped,
            )
            if p.dropped is None:
                candidates.append(Candidate(row.id, p.member.name, p.pitch))
    logger = get_run_logger()
    for a in abstentions:
        logger.warning("%s abstained from pitching: %s", a.member.name, a.error)
    await run.progress("pitches", pitched=len(pitches), kept=len(candidates))
    return candidates


@task(name="peer-review", cache_policy=NO_CACHE, tags=["llm"])
async def review_task(
    run: _Run, roster: Roster, snapshot: MarketSnapshot, candidates: list[Candidate]
) -> ReviewOutcome:
    outcome = await review_stage(
        run.gateway, roster, snapshot, candidates, run.run_id, seed=_shuffle_seed(snapshot)
    )
    with unit_of_work(run.sessions) as session:
        for ballot in outcome.ballots:
            if ballot.batch is None:
                continue
            positions = {label: i for i, label in enumerate(label_order(ballot.labels))}
            for review in ballot.batch.reviews:
                q.add_review(
                    session,
                    run.run_id,
                    ballot.labels[review.pitch],
                    ballot.reviewer.name,
                    review.score,
                    review.critique,
                    ballot.call_id,
                    review.pitch,
                    positions[review.pitch],
                )
    by_id = {c.pitch_id: c for c in candidates}
    table = [
        {
            "rank": i + 1,
            "pitch": s.pitch_id,
            "pm": by_id[s.pitch_id].author,
            "symbol": by_id[s.pitch_id].pitch.symbol,
            "side": str(by_id[s.pitch_id].pitch.side),
            "borda": None if s.borda is None else round(s.borda, 3),
            "mean score": None if s.mean_score is None else round(s.mean_score, 3),
            "reviews": s.reviews,
        }
        for i, s in enumerate(outcome.ranking.standings)
    ]
    await acreate_table_artifact(
        table=table,
        key=f"council-{run.run_id}-pitches",
        description=(
            f"Pitches ranked by normalised Borda count; agreement (Kendall's W) "
            f"{_fmt(outcome.agreement)}, position effect {_fmt(outcome.position_effect)}"
        ),
    )
    await run.progress(
        "review", agreement=outcome.agreement, position_effect=outcome.position_effect
    )
    return outcome


@task(name="chairman", cache_policy=NO_CACHE, tags=["llm"])
async def chair_task(
    run: _Run,
    roster: Roster,
    snapshot: MarketSnapshot,
    candidates: list[Candidate],
    review: ReviewOutcome,
    rules: ChairRules,
) -> list[int]:
    outcome: ChairOutcome = await chair_stage(
        run.gateway, roster, snapshot, candidates, review, run.run_id, rules
    )
    logger = get_run_logger()
    ids = []
    with unit_of_work(run.sessions) as session:
        for call, reason in outcome.rejected:
            logger.warning("chairman call on %s rejected: %s", call.symbol, reason)
            session.add(
                AuditEvent(
                    actor=roster.chairman.name,
                    event="chairman.call_rejected",
                    entity_type="council_run",
                    entity_id=str(run.run_id),
                    payload={
                        "call": call.model_dump(mode="json"),
                        "reason": reason,
                        "llm_call_id": outcome.call_id,
                    },
                )
            )
        for call, pitch_id in outcome.accepted:
            standing = review.ranking.standing(pitch_id)
            decision = q.add_decision(
                session,
                run.run_id,
                pitch_id,
                call.symbol,
                call.action,
                call.target_weight,
                call.conviction,
                call.rationale,
                {
                    "borda": standing.borda,
                    "mean_score": standing.mean_score,
                    "reviews": standing.reviews,
                    "label": next(k for k, v in outcome.labels.items() if v == pitch_id),
                },
                outcome.call_id or None,
            )
            ids.append(decision.id)
    await run.progress("chairman", decisions=len(ids), rejected=len(outcome.rejected))
    return ids


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
) -> State[Any]:
    """One council sitting for `as_of` (default: today); returns the run's summary.

    `members` seats a council of your own (roles analyst, pm and one chairman, each with a
    persona and a model); otherwise the standard council sits, on `models` (or LLM_MODELS)
    taken in turn, the offline analyst when there are none.
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
    run = _Run(settings, run_id, job_id, gateway)
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
    with unit_of_work(sessions) as session:
        finished = q.finish_run(session, run_id, RunStatus.COMPLETED)
        cost = finished.cost_usd.quantize(Decimal("0.000001"))
    summary = {
        "council_run_id": run_id,
        "as_of": when.isoformat(),
        "data_hash": snapshot.data_hash,
        "decisions": settled,
        "cost_usd": str(cost),
    }
    await run.progress("done", RunStatus.COMPLETED, decisions=len(settled), cost_usd=str(cost))
    await run.close()
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


def _shuffle_seed(snapshot: MarketSnapshot) -> str:
    """Reviewers' label shuffles depend on the data, not on the run: a replay of the same
    week shows the same labels, so its prompts, and so its cache keys, are the same."""
    return f"{snapshot.as_of.isoformat()}:{snapshot.data_hash}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
