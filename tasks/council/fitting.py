"""Prompts that fit their model's window: the most of a stage's data that a prompt can carry.

A stage builds its prompt from a number of items in priority order (symbols,
notes); `largest_fitting` finds, by bisection, the most items whose prompt
fits the model's room (`services.llm.window.PromptRoom`). That the prompt grows
with the count is what makes bisection correct; the stages build them so.

A snapshot cut to the symbols a prompt is about (`snapshot_of`) keeps the
market's sector table (small, and the context every member needs) and the
run's data hash (which data the run saw), and only those symbols' rows of the
correlation matrix, whose size grows with the square of the symbols.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, Protocol

from models.snapshot import Correlation, MarketSnapshot, NewsSentiment

Message = dict[str, Any]


class Room(Protocol):
    @property
    def limit(self) -> int | None: ...

    def fits(self, messages: list[Message]) -> bool: ...


def largest_fitting(
    count: int, build: Callable[[int], list[Message]], room: Room, least: int = 1
) -> tuple[int, list[Message]]:
    """The largest k in [least, count] whose `build(k)` fits `room`, with its messages.

    When not even `least` items fit, `least` is returned: the gateway then refuses the
    call with the numbers, and the member abstains with that cause on record."""
    messages = build(count)
    if count <= least or room.fits(messages):
        return count, messages
    low, high = least, count - 1  # build(count) does not fit
    best = least
    while low <= high:
        middle = (low + high) // 2
        if room.fits(build(middle)):
            best, low = middle, middle + 1
        else:
            high = middle - 1
    return best, build(best)


def snapshot_of(
    snapshot: MarketSnapshot, symbols: Collection[str], *, correlation: bool = True
) -> MarketSnapshot:
    """`snapshot` cut to `symbols` (those it has), with or without their correlations."""
    wanted = set(symbols)
    rows = [m for m in snapshot.symbols if m.symbol in wanted]
    names = [m.symbol for m in rows]
    corr = snapshot.correlation
    if correlation:
        index = {s: i for i, s in enumerate(corr.symbols)}
        kept = [index[s] for s in names if s in index]
        matrix = [[corr.matrix[i][j] for j in kept] for i in kept]
        cut = Correlation(
            window=corr.window, symbols=[corr.symbols[i] for i in kept], matrix=matrix
        )
    else:
        cut = Correlation(window=corr.window, symbols=[], matrix=[])
    return snapshot.model_copy(
        update={
            "universe": names,
            "missing": [],
            "symbols": rows,
            "correlation": cut,
            "news_sentiment": _news_of(snapshot.news_sentiment, wanted),
        }
    )


def _news_of(news: NewsSentiment | None, symbols: Collection[str]) -> NewsSentiment | None:
    """The news rows of `symbols`; `items` and the hash stay the universe's (what the run saw)."""
    if news is None:
        return None
    rows = [r for r in news.symbols if r.symbol in symbols]
    if not rows:
        return None
    return news.model_copy(update={"symbols": rows})
