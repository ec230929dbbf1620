"""The weekly council's stage tasks: each runs one stage, writes its outcome to the
project's tables, publishes an artifact and moves the run's job row on.

`CouncilRun` is what the tasks share (the database, the gateway, the run's ids,
the bus when Redis is configured); the flow in `weekly_council.py` builds it
and calls the tasks in order, a barrier between them.

No task carries a Prefect tag. Before a tagged task's body runs, Prefect asks
the server for a slot of each tag's concurrency limit (`POST /api/v2/
concurrency_limits/increment-with-lease`, names `tag:<tag>`) and remembers a
"no such limit" answer for only 5 s. A SQLite Prefect server (`aitrader up`,
tests, benches) serves that request with a read, then an UPDATE, in a
deferred transaction: when another writer in the server holds the database,
which its event and log writers often do as a task starts, SQLite refuses the
upgrade at once ("database is locked", no busy wait), the server answers 503,
and Prefect's client retries after 2**1 s (+-20 %). That was the 1.6-2.4 s
stall at stage boundaries in bench/council.py (issue 17).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, transaction, unit_of_work
from db.queries import council as q
from db.queries.jobs import finish_council_run, record_stage
from models.council import CouncilRun as CouncilRunRow
from models.enums import RunStatus
from models.errors import InvalidInputError
from models.jobs import JobUpdate
from models.ops import AuditEvent
from models.snapshot import MarketSnapshot
from services.bus import Bus, make_bus
from services.bus.job_updates import announce_job
from services.llm.gateway import LLMGateway
from services.settings import Settings
from tasks.council.aggregate import label_order
from tasks.council.anonymise import Aliases
from tasks.council.research import ResearchOutcome, research_stage
from tasks.council.roster import Roster
from tasks.council.screen import Screen, screen, screen_rules
from tasks.council.stages import (
    Candidate,
    ChairOutcome,
    ReviewOutcome,
    chair_stage,
    pitch_stage,
    review_stage,
)
from tasks.council.validation import ChairRules, PitchRules
from tasks.market_snapshot import build_snapshot
from tasks.sentiment import sentiment_params


class CouncilRun:
    """What the stages share: the database, the gateway and the run's ids."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        run_id: int,
        job_id: int | None,
        gateway: LLMGateway,
        caveat: str | None = None,
        aliases: Aliases | None = None,
    ) -> None:
        """`job_id` None: a council backtest's sitting, followed by the backtest's job.
        `caveat` (the members who may remember what followed) heads every artifact.
        `aliases`: an anonymised sitting (tasks/council/anonymise.py): the stages see the
        aliased snapshot, and what they produce is stored real (`real`)."""
        self.settings = settings
        self.sessions = sessions
        self.run_id = run_id
        self.job_id = job_id
        self.gateway = gateway
        self.caveat = caveat
        self.aliases = aliases
        self.bus: Bus | None = make_bus(settings.redis_url) if settings.redis_url else None

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()

    async def progress(self, stage: str, **facts: Any) -> None:
        """The run reached `stage`: its job row says so, and with Redis `jobs:updates` does
        (without Redis the realtime process polls the jobs table: it cannot hear this one)."""
        job_id = self.job_id
        if job_id is None:
            return
        update = await asyncio.to_thread(
            transaction,
            self.sessions,
            lambda s: record_stage(s, job_id, stage, council_run_id=self.run_id, **facts),
        )
        await self._announce(update)

    async def finish(
        self, status: RunStatus, detail: str | None = None, **facts: Any
    ) -> CouncilRunRow:
        """End the run and its job together, as `status` with `detail` (the cause, if not
        completed); the run as it ended, with its cost."""
        run_id = self.run_id
        row, update = await asyncio.to_thread(
            transaction,
            self.sessions,
            lambda s: finish_council_run(s, run_id, status, detail, **facts),
        )
        await self._announce(update)
        return row

    def real(self, value: Any) -> Any:
        """A stage's output (JSON) as the tables keep it: real symbols and prices."""
        return self.aliases.record(value) if self.aliases else value

    def real_symbol(self, symbol: str) -> str:
        return self.aliases.real(symbol) if self.aliases else symbol

    def described(self, description: str) -> str:
        """An artifact's description, headed by the run's caveat when it has one."""
        return f"{self.caveat}. {description}" if self.caveat else description

    async def _announce(self, update: JobUpdate | None) -> None:
        if update is not None and self.bus is not None:
            await announce_job(self.bus, update)


@task(name="market-snapshot", cache_policy=NO_CACHE)
async def snapshot_task(run: CouncilRun, universe: list[str], as_of: datetime) -> MarketSnapshot:
    params = sentiment_params(run.settings)
    with read_sessions_of(run.sessions)() as session:  # slow reads hold no write lock
        snapshot = build_snapshot(session, universe, as_of, sentiment=params)

    def keep_hash(session: Session) -> None:
        q.get_run(session, run.run_id).data_hash = snapshot.data_hash

    await asyncio.to_thread(transaction, run.sessions, keep_hash)
    news = snapshot.news_sentiment
    if run.aliases is not None:  # the stages see aliases; the run row keeps the real hash
        snapshot = run.aliases.snapshot(snapshot)
    await run.progress(
        "snapshot",
        symbols=len(snapshot.symbols),
        data_hash=snapshot.data_hash,
        news_items=news.items if news else 0,
        sentiment_hash=news.sentiment_hash if news else None,
    )
    return snapshot


@task(name="research", cache_policy=NO_CACHE)
async def research_task(
    run: CouncilRun, roster: Roster, snapshot: MarketSnapshot
) -> list[ResearchOutcome]:
    settings = run.settings
    screened = screen(snapshot, screen_rules(settings))
    get_run_logger().info("research screen: %s", screened.describe())
    if not screened.chosen:
        raise InvalidInputError(
            "universe", f"the screen kept no symbol to research ({screened.describe()})"
        )
    outcomes = await research_stage(run.gateway, roster.analysts, snapshot, screened, run.run_id)
    with unit_of_work(run.sessions) as session:
        session.add(_audit(run, "research.screen", run.real(_screen_record(screened))))
        for o in outcomes:
            for symbol, reason in o.rejected:
                record = run.real({"symbol": symbol, "reason": reason, "llm_call_ids": o.calls})
                session.add(_audit(run, "research.note_rejected", record, actor=o.member.name))
            if o.pack is not None:
                notes = run.real([n.model_dump(mode="json") for n in o.pack.notes])
                q.add_research(session, run.run_id, snapshot.as_of, o.member.name, notes, o.call_id)
    lines = [
        f"# Research as of {snapshot.as_of:%Y-%m-%d}",
        "",
        *([f"> **Warning:** {run.caveat}", ""] if run.caveat else []),
        f"Screen: {screened.describe()}; "
        f"shards per analyst: {', '.join(f'{o.member.name} {len(o.shards)}' for o in outcomes)}",
        "",
    ]
    for o in outcomes:
        if o.pack is None:
            lines.append(f"* **{o.member.name}** abstained: {o.error}")
        else:
            lines.append(f"* **{o.member.name}** ({o.member.model}): {run.real(o.pack.regime)}")
            lines.extend(
                f"  * {v.sector}: {v.stance} — {run.real(v.reason)}" for v in o.pack.sector_views
            )
    await acreate_markdown_artifact(
        markdown="\n".join(lines),
        key=f"council-{run.run_id}-research",
        description=run.described("Research"),
    )
    await run.progress(
        "research",
        packs=sum(o.pack is not None for o in outcomes),
        screened=len(screened.chosen),
        calls=sum(len(o.calls) for o in outcomes),
        notes_rejected=sum(len(o.rejected) for o in outcomes),
    )
    return outcomes


@task(name="pitches", cache_policy=NO_CACHE)
async def pitch_task(
    run: CouncilRun,
    roster: Roster,
    snapshot: MarketSnapshot,
    research: list[ResearchOutcome],
    rules: PitchRules,
) -> list[Candidate]:
    pitches, abstentions = await pitch_stage(
        run.gateway, roster, snapshot, research, run.run_id, rules
    )
    candidates = []
    known = {m.symbol for m in snapshot.symbols}
    with unit_of_work(run.sessions) as session:
        for p in pitches:
            if p.pitch.symbol not in known:  # never a row, so never an instrument: on record
                record = {
                    "pitch": run.real(p.pitch.model_dump(mode="json")),
                    "reason": p.dropped,
                    "llm_call_id": p.call_id,
                }
                session.add(_audit(run, "pitch.rejected", record, actor=p.member.name))
                continue
            row = q.add_pitch(
                session,
                run.run_id,
                p.member.name,
                run.real(p.pitch.model_dump(mode="json")),
                p.call_id,
                run.real(p.dropped),
            )
            if p.dropped is None:
                candidates.append(Candidate(row.id, p.member.name, p.pitch))
    logger = get_run_logger()
    for a in abstentions:
        logger.warning("%s abstained from pitching: %s", a.member.name, a.error)
    await run.progress("pitches", pitched=len(pitches), kept=len(candidates))
    return candidates


@task(name="peer-review", cache_policy=NO_CACHE)
async def review_task(
    run: CouncilRun, roster: Roster, snapshot: MarketSnapshot, candidates: list[Candidate]
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
                    run.real(review.critique),
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
            "symbol": run.real_symbol(by_id[s.pitch_id].pitch.symbol),
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
        description=run.described(
            f"Pitches ranked by normalised Borda count; agreement (Kendall's W) "
            f"{_fmt(outcome.agreement)}, position effect {_fmt(outcome.position_effect)}"
        ),
    )
    await run.progress(
        "review", agreement=outcome.agreement, position_effect=outcome.position_effect
    )
    return outcome


@task(name="chairman", cache_policy=NO_CACHE)
async def chair_task(
    run: CouncilRun,
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
                        "call": run.real(call.model_dump(mode="json")),
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
                run.real_symbol(call.symbol),
                call.action,
                call.target_weight,
                call.conviction,
                run.real(call.rationale),
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


def _audit(
    run: CouncilRun, event: str, payload: dict[str, Any], actor: str = "council"
) -> AuditEvent:
    return AuditEvent(
        actor=actor,
        event=event,
        entity_type="council_run",
        entity_id=str(run.run_id),
        payload=payload,
    )


def _screen_record(screened: Screen) -> dict[str, Any]:
    return {"chosen": screened.chosen, "excluded": screened.excluded}


def _shuffle_seed(snapshot: MarketSnapshot) -> str:
    """Reviewers' label shuffles depend on the data, not on the run: a replay of the same
    week shows the same labels, so its prompts, and so its cache keys, are the same."""
    return f"{snapshot.as_of.isoformat()}:{snapshot.data_hash}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
