"""Writing down what a request did, after it did it.

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
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.engine import transaction

logger = logging.getLogger(__name__)


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
