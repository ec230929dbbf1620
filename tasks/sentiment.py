"""Symbol sentiment as of an instant, and scoring what is not scored yet.

`sentiment_as_of` is the one way any reader (the API, the council's snapshot,
the flow that stores rows) gets a symbol's sentiment: it reads the scores of
items known in the window before `as_of`, never after, and weighs them as
services/sentiment/aggregate.py says.

Which scorer: the one that scored most of the window's items over the symbols
asked for, ties to the name first in order, unless one is named. Mixing two
scorers' numbers would average a model with a lexicon; picking the majority
means a model backfill takes over as soon as it has scored the window, and
the answer says whose figures they are.

Scoring reads the headline only: it is what every item has, and what
FinBERT-style classifiers are trained on (sentence-level financial text).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, unit_of_work
from db.queries.inserts import insert_new
from db.queries.sentiment import ScoredMention, scored_mentions, unscored_news
from models.sentiment import NewsScore, SentimentParams, SentimentReport
from services.sentiment.aggregate import Known, symbol_sentiment
from services.sentiment.scorer import Scorer
from services.settings import Settings

logger = logging.getLogger(__name__)


def sentiment_params(settings: Settings) -> SentimentParams:
    return SentimentParams(
        half_life_h=settings.sentiment_half_life_h,
        window_h=settings.sentiment_window_h,
        change_h=settings.sentiment_change_h,
    )


def sentiment_as_of(
    session: Session,
    symbols: Collection[str],
    as_of: datetime,
    params: SentimentParams,
    *,
    scorer: str | None = None,
) -> SentimentReport:
    """Each of `symbols`' sentiment from the items known in the window before `as_of`."""
    wanted = sorted(set(symbols))
    earliest = as_of - timedelta(hours=params.change_h + params.window_h)
    mentions = scored_mentions(session, wanted, earliest, as_of)
    current = [m for m in mentions if m.known_at > as_of - timedelta(hours=params.window_h)]
    chosen = scorer or dominant_scorer(current) or dominant_scorer(mentions)
    by_symbol: dict[str, list[Known]] = {s: [] for s in wanted}
    for m in mentions:
        if m.scorer == chosen:
            by_symbol[m.symbol].append(Known(m.known_at, m.score))
    figures = [symbol_sentiment(s, by_symbol[s], as_of, params, chosen) for s in wanted]
    counted = {m.news_id for m in current if m.scorer == chosen}
    return SentimentReport(
        as_of=as_of,
        scorer=chosen if counted else None,
        half_life_h=params.half_life_h,
        window_h=params.window_h,
        change_h=params.change_h,
        items=len(counted),
        symbols=figures,
    )


def dominant_scorer(mentions: Sequence[ScoredMention]) -> str | None:
    """The scorer of most distinct items, ties to the first name in order."""
    items = Counter(scorer for scorer, _ in {(m.scorer, m.news_id) for m in mentions})
    if not items:
        return None
    return min(items, key=lambda name: (-items[name], name))


def sentiment_hash(report: SentimentReport) -> str:
    """sha256 of the report's figures in canonical JSON: what a council run saw of the news."""
    text = json.dumps(report.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def score_pending(
    sessions: sessionmaker[Session],
    scorer: Scorer,
    *,
    until: datetime,
    since: datetime | None = None,
    batch: int = 32,
    limit: int = 100_000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Score the items known in [since, until] that `scorer` has not scored; how many were.

    Each batch is read, scored with no transaction open (a model takes its time; on
    SQLite a write transaction held meanwhile would stall every other writer), then
    written in a short one of its own. A batch another run wrote meanwhile adds nothing.
    """
    done = 0
    while done < limit:
        with read_sessions_of(sessions)() as session:
            items = [
                (item.id, item.headline)
                for item in unscored_news(
                    session, scorer.name, until=until, since=since, limit=batch
                )
            ]
        if not items:
            break
        scored = scorer.score([headline for _, headline in items])
        if names := {s.scorer for s in scored} - {scorer.name}:
            raise RuntimeError(f"scorer {scorer.name!r} returned scores named {sorted(names)}")
        now = datetime.now(UTC)
        rows = [
            {
                "news_id": news_id,
                "scorer": s.scorer,
                "score": s.score,
                "label": s.label,
                "scored_at": now,
            }
            for (news_id, _), s in zip(items, scored, strict=True)
        ]
        with unit_of_work(sessions) as session:
            insert_new(session, NewsScore, rows)
        done += len(items)
        if progress is not None:
            progress(len(items))
    return done
