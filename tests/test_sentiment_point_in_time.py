"""Point in time, on both databases: a news item known after `as_of` changes neither a
symbol's sentiment as of then nor the council's research prompt (so its hash, its cache key)
for that week; one known before does change them, so the check can fail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.news import insert_news
from models.news import NewsRecord
from models.sentiment import SentimentParams, SentimentReport
from models.snapshot import MarketSnapshot
from services.llm.hashing import prompt_hash
from services.sentiment.lexicon import LexiconScorer
from tasks.council.research import shard_prompter
from tasks.council.roster import Member, Role
from tasks.import_news import content_hash
from tasks.market_snapshot import build_snapshot
from tasks.sentiment import score_pending, sentiment_as_of

AS_OF = date(2019, 6, 3)  # the snapshot's instant: the end of that day, 2019-06-04T00:00Z
UNIVERSE = ["AAPL", "JPM", "MSFT", "NVDA", "XOM"]
PARAMS = SentimentParams()
ANALYST = Member(name="quant", role=Role.ANALYST, persona="momentum", model="offline/momentum")


@pytest.fixture
def db(sample_db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(sample_db_url)
    yield make_session_factory(engine)
    engine.dispose()


def _add(db: sessionmaker[Session], source_id: str, headline: str, symbols: list[str],
         published: str, received: str | None) -> None:  # fmt: skip
    record = NewsRecord(
        source="wire",
        source_id=source_id,
        headline=headline,
        symbols=symbols,
        published_at=datetime.fromisoformat(published),
        received_at=datetime.fromisoformat(received) if received else None,
    )
    with unit_of_work(db) as session:
        insert_news(session, [(record, content_hash(record))])
    score_pending(db, LexiconScorer(), until=datetime(2100, 1, 1, tzinfo=UTC))


def _seen(db: sessionmaker[Session]) -> tuple[MarketSnapshot, SentimentReport, str]:
    """The snapshot, the sentiment report and the first research prompt's hash as of AS_OF."""
    with db() as session:
        snapshot = build_snapshot(session, UNIVERSE, AS_OF, sentiment=PARAMS)
        report = sentiment_as_of(session, UNIVERSE, snapshot.as_of, PARAMS)
    messages = shard_prompter(ANALYST, snapshot, len(UNIVERSE))(UNIVERSE)
    return snapshot, report, prompt_hash(messages)


def _news_in(messages_of: MarketSnapshot) -> dict[str, Any]:
    dumped = messages_of.model_dump(mode="json")
    return dict(dumped["news_sentiment"])


def test_an_item_known_after_as_of_changes_neither_sentiment_nor_the_research_hash(
    db: sessionmaker[Session],
) -> None:
    bare, _, bare_hash = _seen(db)
    assert bare.news_sentiment is None
    assert "news_sentiment" not in bare.model_dump(mode="json")  # no news: the prompt as before

    _add(db, "1", "Apple shares soar after record earnings beat", ["AAPL"],
         "2019-06-03T13:00:00+00:00", "2019-06-03T13:00:05+00:00")  # fmt: skip
    _add(db, "2", "Microsoft stock plunges on antitrust lawsuit", ["MSFT"],
         "2019-06-02T09:00:00+00:00", None)  # an archive item: known when published  # fmt: skip
    snapshot, report, research_hash = _seen(db)
    assert research_hash != bare_hash  # the news reached the prompt
    news = _news_in(snapshot)
    assert news["items"] == 2
    assert report.items == 2
    assert news["summary"].startswith("2 news items on 2 of the 5 symbols, known from ")
    assert "2019-06-02T09:00:00" in news["summary"]  # says from when
    by_symbol = {s.symbol: s for s in report.symbols}
    assert by_symbol["AAPL"].score is not None
    assert by_symbol["AAPL"].score > 0
    assert by_symbol["MSFT"].score is not None
    assert by_symbol["MSFT"].score < 0
    assert by_symbol["XOM"].count == 0
    assert by_symbol["XOM"].score is None

    # Published before as_of but received after it: unknown at as_of. And one from later on.
    _add(db, "3", "Apple downgraded, shares tumble", ["AAPL"],
         "2019-06-03T23:00:00+00:00", "2019-06-04T00:00:01+00:00")  # fmt: skip
    _add(db, "4", "Exxon surges to record", ["XOM"],
         "2019-06-10T14:00:00+00:00", "2019-06-10T14:00:01+00:00")  # fmt: skip
    again, report_again, hash_again = _seen(db)
    assert report_again == report
    assert again.news_sentiment == snapshot.news_sentiment
    assert hash_again == research_hash

    # The control: an item known one second before as_of changes all three.
    _add(db, "5", "Apple faces probe over App Store", ["AAPL"],
         "2019-06-03T23:59:00+00:00", "2019-06-03T23:59:59+00:00")  # fmt: skip
    moved, report_moved, hash_moved = _seen(db)
    assert report_moved.items == 3
    assert report_moved != report
    assert moved.news_sentiment is not None
    assert snapshot.news_sentiment is not None
    assert moved.news_sentiment.sentiment_hash != snapshot.news_sentiment.sentiment_hash
    assert hash_moved != research_hash


def test_a_shard_sees_only_its_symbols_news(db: sessionmaker[Session]) -> None:
    _add(db, "1", "Apple shares soar", ["AAPL"], "2019-06-03T13:00:00+00:00", None)
    _add(db, "2", "Exxon slumps", ["XOM"], "2019-06-03T14:00:00+00:00", None)
    snapshot, _, _ = _seen(db)
    messages = shard_prompter(ANALYST, snapshot, len(UNIVERSE))(["AAPL", "MSFT"])
    text = messages[1]["content"]
    assert '"symbol":"AAPL"' in text.replace(" ", "")
    assert "Exxon" not in text
    assert "XOM" not in text.split("news_sentiment", 1)[1]


def test_the_majority_scorer_is_read_and_named(db: sessionmaker[Session]) -> None:
    _add(db, "1", "Apple shares soar", ["AAPL"], "2019-06-03T13:00:00+00:00", None)
    with db() as session:
        report = sentiment_as_of(session, ["AAPL"], datetime(2019, 6, 4, tzinfo=UTC), PARAMS)
        other = sentiment_as_of(
            session, ["AAPL"], datetime(2019, 6, 4, tzinfo=UTC), PARAMS, scorer="no-such"
        )
    assert report.scorer == LexiconScorer().name
    assert report.symbols[0].scorer == LexiconScorer().name
    assert (other.scorer, other.items, other.symbols[0].count) == (None, 0, 0)
