"""Acting from a request without stalling the server, and writing down what it did.

Some requests act outside the database first (an order to the broker, a
resumed flow run) and then record it (an audit event, a reply's outcome). By
the house rule a request that did something never answers an error: the
client would retry and act twice. So the record is written with retries on
conflicts (`transaction`), and if it still cannot be written the failure is
logged loudly (`after_effect.unrecorded`, with what was done) and the request
answers what it did. The effects themselves are already in their own tables
(intents, orders, the flow run), so nothing is lost but the extra record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from db.engine import transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def record_after_effect(
    sessions: sessionmaker[Session], work: Callable[[Session], Any], *, what: str, **facts: Any
) -> bool:
    """Run `work` in a retried unit of work; False (logged, not raised) if it failed."""
    try:
        await asyncio.to_thread(transaction, sessions, work)
    except Exception:  # past the effect: log it with the facts, answer the effect anyway
        logger.exception("after_effect.unrecorded", extra={"what": what, **facts})
        return False
    return True


async def off_the_loop(work: Callable[[], Awaitable[T]]) -> T:
    """Run async `work` on an event loop of its own, in a worker thread.

    The execution code (tasks/execution) is written for flows: it awaits the
    broker but reads and writes the database synchronously between awaits. On
    the realtime server's loop each of those writes would stall every stream,
    and a write queueing for SQLite's lock would stall the very requests whose
    commits it waits for. So trades a request places run here, away from it.
    """
    return await asyncio.to_thread(lambda: asyncio.run(_awaited(work)))


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()
