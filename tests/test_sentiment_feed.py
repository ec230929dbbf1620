"""The realtime sentiment feed, on both databases: what the strategy engine's lookup answers
(recent enough or nothing) and which stored rows are news to push (a backfill's past is not)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.instruments import ensure_instruments
from db.queries.sentiment import store_sentiment
from models.sentiment import SymbolSentiment
from realtime.sentiment_feed import SentimentFeed

NOW = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)


def _figure(symbol: str, as_of: datetime, score: float) -> SymbolSentiment:
    return SymbolSentiment(
        symbol=symbol, as_of=as_of, scorer="lexicon", score=score, count=2, dispersion=0.1,
        change=None, first_known_at=as_of - timedelta(hours=3), last_known_at=as_of,
        half_life_h=24, window_h=168,
    )  # fmt: skip


def _store(sessions: sessionmaker[Session], *figures: SymbolSentiment) -> None:
    with unit_of_work(sessions) as session:
        store_sentiment(session, list(figures))


def test_the_lookup_is_the_latest_recent_score_and_only_news_is_pushed(
    sessions: sessionmaker[Session],
) -> None:
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL", "MSFT", "XOM"])
    _store(sessions, _figure("AAPL", NOW - timedelta(hours=1), 0.4),
           _figure("XOM", NOW - timedelta(days=9), -0.6))  # fmt: skip
    clock = [NOW]
    feed = SentimentFeed(sessions, None, window_h=168, clock=lambda: clock[0])

    async def scenario() -> list[int]:
        await feed.start()
        try:
            _store(sessions, _figure("MSFT", NOW, -0.3))
            _store(sessions, _figure("AAPL", NOW - timedelta(days=2), 0.9))  # a backfill's past
            pushed = [await feed.poll()]
            _store(sessions, _figure("AAPL", NOW + timedelta(minutes=15), 0.1))
            pushed.append(await feed.poll())
            return pushed
        finally:
            await feed.stop()

    assert asyncio.run(scenario()) == [1, 1]  # MSFT, then AAPL's newer figure; not the past
    assert feed.lookup("MSFT") == -0.3
    assert feed.lookup("AAPL") == 0.1
    assert feed.lookup("XOM") is None  # nine days old: older than the window
    assert feed.lookup("NVDA") is None  # no news at all
    clock[0] = NOW + timedelta(days=8)
    assert feed.lookup("MSFT") is None  # the same figure, a week later: no longer an input
