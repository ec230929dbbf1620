"""Members asked in parallel: one `asyncio.TaskGroup`, so a budget stop cancels the rest.

A budget stop is the run's to handle, as itself: it leaves here as the
`BudgetExceededError` it was, not wrapped in an `ExceptionGroup` (however deeply
the groups nest: the research stage runs shards inside members).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

from models.errors import BudgetExceededError

T = TypeVar("T")
R = TypeVar("R")


async def each(ask: Callable[[T], Coroutine[Any, Any, R]], items: Iterable[T]) -> list[R]:
    """`ask(item)` for every item at once; the answers in the items' order."""
    return await together([ask(item) for item in items])


async def together(calls: Iterable[Awaitable[R]]) -> list[R]:
    """Every awaitable at once; the results in order."""

    async def wrap(call: Awaitable[R]) -> R:
        return await call

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(wrap(c)) for c in calls]
    except ExceptionGroup as errors:
        budget = errors.subgroup(BudgetExceededError)
        if budget is not None:
            raise _first(budget) from None
        raise
    return [t.result() for t in tasks]


def _first(group: BaseExceptionGroup[BudgetExceededError]) -> BudgetExceededError:
    error = group.exceptions[0]
    return error if isinstance(error, BudgetExceededError) else _first(error)
