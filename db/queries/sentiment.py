"""News scores and stored symbol sentiment: written by the sentiment flow, read point in time."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.queries.inserts import insert_new
from models.news import NewsItem, NewsSymbol
from models.sentiment import NewsScore, SymbolSentiment, SymbolSentimentRow

MAX_LIST = 1000
CHUNK = 500


class ScoredMention(NamedTuple):
    """One symbol's mention in a scored item."""

    symbol: str
    news_id: int
    known_at: datetime
    scorer: str
    score: float


def unscored_news(
    session: Session,
    scorer: str,
    *,
    until: datetime,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[NewsItem]:
    """Items known in [since, until] that `scorer` has not scored, oldest first."""
    scored = select(NewsScore.news_id).where(NewsScore.scorer == scorer)
    stmt = select(NewsItem).where(NewsItem.known_at <= until, NewsItem.id.not_in(scored))
    if since is not None:
        stmt = stmt.where(NewsItem.known_at >= since)
    stmt = stmt.order_by(NewsItem.known_at, NewsItem.id).limit(limit)
    return list(session.scalars(stmt))


def scored_mentions(
    session: Session, symbols: Collection[str], since: datetime, until: datetime
) -> list[ScoredMention]:
    """Every score of every item naming one of `symbols` known in (since, until]."""
    wanted = sorted(set(symbols))
    out: list[ScoredMention] = []
    for start in range(0, len(wanted), CHUNK):
        rows = session.execute(
            select(
                NewsSymbol.symbol,
                NewsSymbol.news_id,
                NewsSymbol.known_at,
                NewsScore.scorer,
                NewsScore.score,
            )
            .join(NewsScore, NewsScore.news_id == NewsSymbol.news_id)
            .where(
                NewsSymbol.symbol.in_(wanted[start : start + CHUNK]),
                NewsSymbol.known_at > since,
                NewsSymbol.known_at <= until,
            )
        )
        out += [ScoredMention(*row) for row in rows]
    return out


def news_symbols_known(session: Session, since: datetime, until: datetime) -> list[str]:
    """The symbols named by any item known in (since, until]."""
    rows = session.scalars(
        select(NewsSymbol.symbol)
        .where(NewsSymbol.known_at > since, NewsSymbol.known_at <= until)
        .distinct()
    )
    return sorted(rows)


def scores_of(session: Session, news_ids: Collection[int]) -> dict[int, list[NewsScore]]:
    """The scores of each item in `news_ids`."""
    out: dict[int, list[NewsScore]] = {}
    ids = sorted(news_ids)
    for start in range(0, len(ids), CHUNK):
        for row in session.scalars(
            select(NewsScore).where(NewsScore.news_id.in_(ids[start : start + CHUNK]))
        ):
            out.setdefault(row.news_id, []).append(row)
    return out


def store_sentiment(session: Session, figures: Sequence[SymbolSentiment]) -> int:
    """Store the figures of symbols that had news; one already stored for the same (symbol,
    as_of, scorer) is kept as it was. Returns how many rows are new."""
    rows = [
        {
            "symbol": f.symbol,
            "as_of": f.as_of,
            "scorer": f.scorer,
            "score": f.score,
            "count": f.count,
            "dispersion": f.dispersion,
            "change": f.change,
            "first_known_at": f.first_known_at,
            "last_known_at": f.last_known_at,
            "half_life_h": f.half_life_h,
            "window_h": f.window_h,
        }
        for f in figures
        if f.count and f.scorer is not None
    ]
    return insert_new(session, SymbolSentimentRow, rows)


def sentiment_history(
    session: Session,
    symbol: str,
    *,
    until: datetime,
    since: datetime | None = None,
    scorer: str | None = None,
    limit: int = 500,
) -> list[SymbolSentimentRow]:
    """`symbol`'s stored sentiment at or before `until`, oldest first (the newest `limit`)."""
    stmt = select(SymbolSentimentRow).where(
        SymbolSentimentRow.symbol == symbol, SymbolSentimentRow.as_of <= until
    )
    if since is not None:
        stmt = stmt.where(SymbolSentimentRow.as_of >= since)
    if scorer is not None:
        stmt = stmt.where(SymbolSentimentRow.scorer == scorer)
    stmt = stmt.order_by(SymbolSentimentRow.as_of.desc(), SymbolSentimentRow.id.desc())
    rows = list(session.scalars(stmt.limit(min(limit, MAX_LIST))))
    return rows[::-1]


def sentiment_rows_after(
    session: Session, after_id: int, limit: int = 500
) -> list[SymbolSentimentRow]:
    """Stored rows with an id above `after_id`, in id order: what a poller has not seen."""
    stmt = (
        select(SymbolSentimentRow)
        .where(SymbolSentimentRow.id > after_id)
        .order_by(SymbolSentimentRow.id)
        .limit(limit)
    )
    return list(session.scalars(stmt))


def newest_sentiment_id(session: Session) -> int:
    return int(
        session.scalar(
            select(SymbolSentimentRow.id).order_by(SymbolSentimentRow.id.desc()).limit(1)
        )
        or 0
    )


def latest_sentiment(session: Session, as_of: datetime) -> dict[str, SymbolSentimentRow]:
    """Each symbol's newest stored row at or before `as_of` (the realtime lookup's seed)."""
    newest = (
        select(SymbolSentimentRow.symbol, func.max(SymbolSentimentRow.as_of).label("as_of"))
        .where(SymbolSentimentRow.as_of <= as_of)
        .group_by(SymbolSentimentRow.symbol)
        .subquery()
    )
    rows = session.scalars(
        select(SymbolSentimentRow)
        .join(
            newest,
            (newest.c.symbol == SymbolSentimentRow.symbol)
            & (newest.c.as_of == SymbolSentimentRow.as_of),
        )
        .order_by(SymbolSentimentRow.id)
    )
    return {row.symbol: row for row in rows}  # two scorers at one instant: the later row
