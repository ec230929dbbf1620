"""News items for tests, stored and scored the way imports and the sentiment flow store them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.news import insert_news
from models.news import NewsRecord
from services.sentiment.lexicon import LexiconScorer
from tasks.import_news import content_hash
from tasks.sentiment import score_pending

FAR = datetime(2100, 1, 1, tzinfo=UTC)


def add_news(
    sessions: sessionmaker[Session],
    source_id: str,
    headline: str,
    symbols: list[str],
    known: datetime,
    *,
    score: bool = True,
) -> None:
    """Store one item received at `known` (published a minute before), scored by the lexicon
    unless `score` is False."""
    record = NewsRecord(
        source="wire",
        source_id=source_id,
        headline=headline,
        symbols=symbols,
        published_at=known.replace(second=0, microsecond=0),
        received_at=known,
    )
    with unit_of_work(sessions) as session:
        insert_news(session, [(record, content_hash(record))])
    if score:
        score_pending(sessions, LexiconScorer(), until=FAR)
