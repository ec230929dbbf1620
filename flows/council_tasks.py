"""The weekly council's stage tasks: each runs one stage, writes its outcome to the
project's tables, publishes an artifact and moves the run's job row on.

`CouncilRun` (flows/council_run.py) is what the tasks share; the flow in
`weekly_council.py` builds it and calls the tasks in order, a barrier between them.

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
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db.engine import read_sessions_of, transaction, unit_of_work
from db.queries import council as q
from db.queries.track_record import reviews_with_outcomes, save_outcomes
from flows.council_run import CouncilRun
from models.errors import InvalidInputError
from models.ops import AuditEvent
from models.snapshot import MarketSnapshot
from tasks.council.aggregate import Ranking, label_order
from tasks.council.research import ResearchOutcome, research_stage
from tasks.council.roster import Roster
from tasks.council.screen import Screen, screen, screen_rules
from tasks.council.skill import reviewer_weights
from tasks.council.stages import (
    Candidate,
    ChairOutcome,
    ReviewOutcome,
    chair_stage,
    pitch_stage,
    review_stage,
)
from tasks.council.validation import ChairRules, PitchRules
from tasks.council_backtest.judge import outcomes_due
from tasks.market_snapshot import build_snapshot
from tasks.sentiment import sentiment_params


@task(name="market-snapshot", cache_policy=NO_CACHE)
async def snapshot_task(run: CouncilRun, universe: list[str], as_of: datetime) -> MarketSnapshot:
    params = sentiment_params(run.settings)
    with read_sessions_of(run.sessions)() as session:  # slow reads hold no write lock
        snapshot = build_snapshot(session, universe, as_of, sentiment=params)
        scored = outcomes_due(session, as_of)  # the track record, as it stands today
    if scored:
        try:
            await asyncio.to_thread(transaction, run.sessions, lambda s: save_outcomes(s, scored))
        except IntegrityError:  # a sitting beside this one stored the same outcomes first
            get_run_logger().info("pitch outcomes already scored by another sitting")

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
        pitches_scored=len(scored),
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
    with read_sessions_of(run.sessions)() as session:
        seen = reviews_with_outcomes(session, snapshot.as_of)
    weights = reviewer_weights(seen, [m.name for m in roster.pms]) if seen else None
    outcome = await review_stage(
        run.gateway,
        roster,
        snapshot,
        candidates,
        run.run_id,
        seed=_shuffle_seed(snapshot),
        weights=weights,
        weighted=run.weighting,
    )
    with unit_of_work(run.sessions) as session:
        session.add(_audit(run, "review.tallies", _tallies(outcome)))
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
    plain, skilled = _points(outcome.plain), _points(outcome.weighted)
    ranked_by = "skill-weighted" if run.weighting and outcome.weighted else "normalised"
    table = [
        {
            "rank": i + 1,
            "pitch": s.pitch_id,
            "pm": by_id[s.pitch_id].author,
            "symbol": run.real_symbol(by_id[s.pitch_id].pitch.symbol),
            "side": str(by_id[s.pitch_id].pitch.side),
            "borda": _round(plain.get(s.pitch_id)),
            "weighted borda": _round(skilled.get(s.pitch_id)),
            "mean score": _round(s.mean_score),
            "reviews": s.reviews,
        }
        for i, s in enumerate(outcome.ranking.standings)
    ]
    await acreate_table_artifact(
        table=table,
        key=f"council-{run.run_id}-pitches",
        description=run.described(
            f"Pitches ranked by {ranked_by} Borda count; agreement (Kendall's W) "
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
                    "plain_borda": _points(review.plain).get(pitch_id),
                    "weighted_borda": _points(review.weighted).get(pitch_id),
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


def _points(ranking: Ranking | None) -> dict[int, float | None]:
    return {s.pitch_id: s.borda for s in ranking.standings} if ranking else {}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _tallies(outcome: ReviewOutcome) -> dict[str, Any]:
    """Both tallies of a review, for the record: one reviewer one vote, and weighted by the
    reviewers' skill (null before any reviewer has a record), and which one ranked."""
    plain, skilled = _points(outcome.plain), _points(outcome.weighted)
    return {
        "weights": outcome.weights,
        "ranked_by": "weighted" if outcome.ranking is outcome.weighted else "plain",
        "pitches": [
            {"pitch": p, "borda": plain[p], "weighted_borda": skilled.get(p)} for p in plain
        ],
        "order": [s.pitch_id for s in outcome.ranking.standings],
        "plain_order": [s.pitch_id for s in outcome.plain.standings] if outcome.plain else [],
        "weighted_order": (
            [s.pitch_id for s in outcome.weighted.standings] if outcome.weighted else None
        ),
    }


def _shuffle_seed(snapshot: MarketSnapshot) -> str:
    """Reviewers' label shuffles depend on the data, not on the run: a replay of the same
    week shows the same labels, so its prompts, and so its cache keys, are the same."""
    return f"{snapshot.as_of.isoformat()}:{snapshot.data_hash}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
