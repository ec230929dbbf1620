"""`sentiment_analysis`: score the news not scored yet, then store each symbol's sentiment.

Two modes, one flow:

* **live** (no `start`): as of now, score the items known in the window (and
  the `change` span before it) that the configured scorer has not scored,
  then store the sentiment of every symbol with news in the window. The
  deployment runs it every 15 minutes in New York market hours.
* **backfill** (`start`, optional `end`, `step_hours`): score everything known
  by `end`, then store every symbol's sentiment at each step from `start` to
  `end`, each step from the items known by then only. A progress artifact
  (the bar in the Prefect UI) and the job's `done`/`total` follow the steps.

The scorer is the configured model (SENTIMENT_MODEL_DIR, by SENTIMENT_RUNTIME)
or the lexicon; a model directory that is missing or broken does not stop the
run: it goes on with the lexicon, says why in the log and in the job's result
(`scorer_note`), and every stored row names the scorer that made it. Rows
already stored (a rerun, an overlapping backfill) are kept as they were.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from db.engine import make_engine, make_session_factory, read_sessions_of, unit_of_work
from db.queries.sentiment import news_symbols_known, store_sentiment
from flows.job_hooks import JOB_HOOKS, record_progress, record_result
from models.errors import InvalidInputError
from models.sentiment import MAX_BACKFILL_STEPS, SentimentParams, backfill_steps
from services.sentiment.loading import load_scorer
from services.settings import get_settings
from tasks.sentiment import score_pending, sentiment_as_of, sentiment_params

PROGRESS_LOGGER = "flows.sentiment.progress"  # `done`/`total` extras: the CLI's progress bar
progress_log = logging.getLogger(PROGRESS_LOGGER)
PROGRESS_EVERY_S = 2.0


@task(name="score-news", cache_policy=NO_CACHE)
def score_news(since: datetime | None, until: datetime, job_id: int | None) -> dict[str, Any]:
    """Score the items known in [since, until] the configured scorer has not scored."""
    settings = get_settings()
    loaded = load_scorer(settings)
    logger = get_run_logger()
    if loaded.note:
        logger.warning("sentiment scorer: %s", loaded.note)
    engine = make_engine(settings.database_url)
    scored = 0

    told = 0.0

    def counted(n: int) -> None:
        nonlocal scored, told
        scored += n
        if monotonic() - told >= PROGRESS_EVERY_S:  # a write per batch would crowd SQLite
            told = monotonic()
            record_progress(job_id, "scoring", scored=scored)

    try:
        score_pending(
            make_session_factory(engine),
            loaded.scorer,
            until=until,
            since=since,
            batch=settings.sentiment_batch,
            progress=counted,
        )
    finally:
        engine.dispose()
    logger.info("%d items scored by %s (%s)", scored, loaded.scorer.name, loaded.runtime)
    return {
        "scorer": loaded.scorer.name,
        "runtime": loaded.runtime,
        "scorer_note": loaded.note,
        "scored": scored,
    }


@task(name="store-sentiment", cache_policy=NO_CACHE)
def store_steps(
    instants: list[datetime],
    symbols: list[str] | None,
    params: SentimentParams,
    job_id: int | None,
) -> dict[str, Any]:
    """Store every symbol's sentiment at each instant; progress after each step."""
    settings = get_settings()
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    read_sessions = read_sessions_of(sessions)
    progress = (
        cast(UUID, create_progress_artifact(progress=0.0, description="Sentiment steps stored"))
        if len(instants) > 1
        else None
    )
    stored = symbols_seen = 0
    last: list[dict[str, Any]] = []
    try:
        for done, instant in enumerate(instants, start=1):
            with read_sessions() as session:  # reads hold no write lock (SQLite)
                window = instant - timedelta(hours=params.window_h)
                names = symbols or news_symbols_known(session, window, instant)
                report = sentiment_as_of(session, names, instant, params)
            with unit_of_work(sessions) as session:
                stored += store_sentiment(session, report.symbols)
            symbols_seen = max(symbols_seen, sum(1 for f in report.symbols if f.count))
            last = [f.model_dump(mode="json") for f in report.symbols if f.count]
            if progress is not None:
                update_progress_artifact(
                    artifact_id=progress, progress=100.0 * done / len(instants)
                )
            record_progress(job_id, "sentiment", done=done, total=len(instants), stored=stored)
            progress_log.debug("sentiment.step", extra={"done": done, "total": len(instants)})
    finally:
        engine.dispose()
    return {"steps": len(instants), "stored": stored, "symbols": symbols_seen, "latest": last}


def backfill_instants(start: date, end: date, step_hours: float) -> list[datetime]:
    """From `start`'s midnight (UTC) to `end`'s end, every `step_hours`."""
    first = datetime.combine(start, time(), tzinfo=UTC)
    count = backfill_steps(start, end, step_hours)
    if count > MAX_BACKFILL_STEPS:
        raise InvalidInputError(
            "step_hours", f"{count} steps from {start} to {end}: at most {MAX_BACKFILL_STEPS}"
        )
    return [first + k * timedelta(hours=step_hours) for k in range(1, count + 1)]


@flow(name="sentiment-analysis", retries=0, **JOB_HOOKS)
def sentiment_analysis(
    symbols: list[str] | None = None,
    start: date | None = None,
    end: date | None = None,
    step_hours: float = 24.0,
    job_id: int | None = None,
) -> dict[str, Any]:
    """Live (no `start`): score new items and store sentiment as of now. Backfill: from
    `start` to `end` (default today), a stored figure every `step_hours`."""
    settings = get_settings()
    params = sentiment_params(settings)
    lead = timedelta(hours=params.window_h + params.change_h)
    if start is None:
        if end is not None:
            raise InvalidInputError("end", "a backfill needs start too; live runs take neither")
        instants = [datetime.now(UTC)]
    else:
        instants = backfill_instants(start, end or datetime.now(UTC).date(), step_hours)
        if not instants:
            raise InvalidInputError("end", f"end {end} is before start {start}")
    scoring = score_news(instants[0] - lead, instants[-1], job_id)
    stored = store_steps(instants, symbols, params, job_id)
    summary = {
        "mode": "live" if start is None else "backfill",
        "from": instants[0].isoformat(),
        "to": instants[-1].isoformat(),
        **scoring,
        **stored,
    }
    get_run_logger().info(
        "sentiment: %d items scored, %d rows stored over %d steps",
        scoring["scored"],
        stored["stored"],
        stored["steps"],
    )
    record_result(job_id, "sentiment", summary)
    return summary
