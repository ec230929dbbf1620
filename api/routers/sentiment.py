"""Symbol sentiment from scored news, point in time, and the items behind it.

* `GET /api/sentiment`: each symbol's figures as of any instant, computed from
  the scores of the items known by then (tasks/sentiment.py), never later ones;
* `GET /api/sentiment/history`: what the `sentiment_analysis` flow stored for a
  symbol over time (the series a chart draws);
* `GET /api/news`: the items themselves, newest first, each with its score.

The WebSocket topic `sentiment` pushes each stored row as the flow writes it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from api.deps import RuntimeDep, SettingsDep
from api.params import SymbolsQuery, parse_symbols
from db.queries.instruments import instrument_exists
from db.queries.news import news_as_of
from db.queries.sentiment import MAX_LIST, news_symbols_known, scores_of, sentiment_history
from models.errors import InvalidInputError
from models.market import Symbol
from models.news import NewsOut
from models.sentiment import NewsScore, ScoredNews, SentimentReport
from tasks.sentiment import sentiment_as_of, sentiment_params

router = APIRouter(tags=["sentiment"])

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, tzinfo=UTC)


def _in_range(value: datetime) -> datetime:
    """In UTC, between 1970 and 2999: a window reaching back from it must exist."""
    try:
        value = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the instant is out of range once converted to UTC") from exc
    if not EARLIEST <= value <= LATEST:
        raise ValueError("must be between 1970-01-01 and 2999-12-31 (UTC)")
    return value


AsOf = Annotated[AwareDatetime, AfterValidator(_in_range)]
AsOfQuery = Annotated[
    AsOf | None,
    Query(description="Point in time (ISO 8601 with offset): only items known by then count; "
          "default now."),
]  # fmt: skip
ScorerQuery = Annotated[
    str | None,
    Query(
        max_length=128,
        description="Read this scorer's scores; default the one that scored most items.",
    ),
]


@router.get("/api/sentiment")
async def get_sentiment(
    runtime: RuntimeDep,
    settings: SettingsDep,
    symbols: SymbolsQuery = None,
    as_of: AsOfQuery = None,
    scorer: ScorerQuery = None,
) -> SentimentReport:
    """Each symbol's sentiment as of `as_of`: the decayed mean of its items' scores (-1..1),
    how many items, their dispersion, the change against `SENTIMENT_CHANGE_H` before, and
    from when to when. Only items known by `as_of` count. Without `symbols`, every symbol
    named by an item in the window. 422 for a symbol that is not an instrument."""
    wanted = parse_symbols(symbols)
    instant = as_of or datetime.now(UTC)
    params = sentiment_params(settings)

    def read() -> SentimentReport:
        with runtime.read_sessions() as session:
            if wanted is None:
                since = instant - timedelta(hours=params.window_h)
                names = news_symbols_known(session, since, instant)
            else:
                unknown = [s for s in wanted if not instrument_exists(session, s)]
                if unknown:
                    raise InvalidInputError(
                        "query.symbols", f"not an instrument: {', '.join(unknown)}"
                    )
                names = wanted
            return sentiment_as_of(session, names, instant, params, scorer=scorer)

    return await asyncio.to_thread(read)


class SentimentPoint(BaseModel):
    """One stored figure of a symbol's sentiment."""

    model_config = ConfigDict(from_attributes=True)

    as_of: datetime
    scorer: str
    score: float
    count: int
    dispersion: float
    change: float | None
    first_known_at: datetime
    last_known_at: datetime


class SentimentHistory(BaseModel):
    symbol: str
    points: list[SentimentPoint] = Field(description="Oldest first.")


@router.get("/api/sentiment/history")
async def get_sentiment_history(
    runtime: RuntimeDep,
    symbol: Annotated[Symbol, Query(description="A ticker; case does not matter.")],
    since: Annotated[AsOf | None, Query(description="From this instant (ISO 8601).")] = None,
    until: Annotated[AsOf | None, Query(description="Up to this instant; default now.")] = None,
    scorer: ScorerQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 500,
) -> SentimentHistory:
    """The sentiment the `sentiment_analysis` flow stored for `symbol` (each run and each
    backfill step), oldest first: the newest `limit` at or before `until`."""
    end = until or datetime.now(UTC)
    if since is not None and since > end:
        raise InvalidInputError("query.since", "must not be after until")

    def read() -> SentimentHistory:
        with runtime.read_sessions() as session:
            rows = sentiment_history(
                session, symbol, until=end, since=since, scorer=scorer, limit=limit
            )
            return SentimentHistory(
                symbol=symbol, points=[SentimentPoint.model_validate(r) for r in rows]
            )

    return await asyncio.to_thread(read)


class NewsWithScore(NewsOut):
    sentiment: ScoredNews | None = Field(
        description="The item's score by `scorer` (default: the scorer of most listed items)."
    )


@router.get("/api/news")
async def list_news(
    runtime: RuntimeDep,
    symbols: SymbolsQuery = None,
    as_of: AsOfQuery = None,
    since: Annotated[AsOf | None, Query(description="Only items known at or after this.")] = None,
    scorer: ScorerQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
) -> list[NewsWithScore]:
    """News items known by `as_of` (default now), newest first, naming any of `symbols`,
    each with its sentiment score and which scorer made it. Nothing known after `as_of`."""
    wanted = parse_symbols(symbols)
    instant = as_of or datetime.now(UTC)

    def read() -> list[NewsWithScore]:
        with runtime.read_sessions() as session:
            items = news_as_of(session, instant, symbols=wanted, since=since, limit=limit)
            scores = scores_of(session, [i.id for i in items])
            chosen = scorer or _most_used(scores)
            out = []
            for item in items:
                pick = next((s for s in scores.get(item.id, []) if s.scorer == chosen), None)
                sentiment = (
                    None
                    if pick is None
                    else ScoredNews(score=pick.score, label=pick.label, scorer=pick.scorer)
                )
                out.append(
                    NewsWithScore(**NewsOut.model_validate(item).model_dump(), sentiment=sentiment)
                )
            return out

    return await asyncio.to_thread(read)


def _most_used(scores: dict[int, list[NewsScore]]) -> str | None:
    """The scorer of most of the listed items, ties to the first name (as tasks/sentiment.py)."""
    counts = Counter(s.scorer for rows in scores.values() for s in rows)
    return min(counts, key=lambda name: (-counts[name], name)) if counts else None
