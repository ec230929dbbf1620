"""Symbol sentiment in the realtime process: pushed on the `sentiment` topic, looked up by the
strategy engine.

The `sentiment_analysis` flow runs elsewhere (a Prefect worker, a job's child
process) and writes `symbol_sentiment` rows. This feed polls that table by id
(one indexed range read every `interval_s`), so it works the same embedded
and with Redis, on every replica, with no channel for a flow to reach: each
new row goes out on the WebSocket topic `sentiment` as
`{"event": "sentiment.updated", symbol, as_of, score, ...}` and becomes the
symbol's latest figure. A row older than the symbol's latest (a backfill
filling in the past) is history for `GET /api/sentiment/history`, not pushed.

`lookup(symbol)` is the strategy engine's sentiment input: the symbol's
latest stored score, or None when it is older than the sentiment window (a
week-old mood is no input) or there is none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.queries.sentiment import latest_sentiment, newest_sentiment_id, sentiment_rows_after
from models.sentiment import SymbolSentimentRow
from realtime.background import BackgroundTask
from realtime.ws_hub import Topic, WSHub

logger = logging.getLogger(__name__)

EVENT = "sentiment.updated"


def sentiment_message(row: SymbolSentimentRow) -> dict[str, Any]:
    """A stored row as the `sentiment` topic carries it."""
    return {
        "event": EVENT,
        "symbol": row.symbol,
        "as_of": row.as_of.isoformat(),
        "scorer": row.scorer,
        "score": row.score,
        "count": row.count,
        "dispersion": row.dispersion,
        "change": row.change,
        "first_known_at": row.first_known_at.isoformat(),
        "last_known_at": row.last_known_at.isoformat(),
    }


class SentimentFeed:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        hub: WSHub | None,
        *,
        window_h: float,
        interval_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._window = timedelta(hours=window_h)
        self._interval = interval_s
        self._clock = clock
        self._task = BackgroundTask("sentiment-feed")
        self._after_id = 0
        self.latest: dict[str, tuple[datetime, float]] = {}  # symbol -> (as_of, score)
        self.published = 0

    @property
    def running(self) -> bool:
        return self._task.running

    async def start(self) -> None:
        await asyncio.to_thread(self._seed)
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()

    def lookup(self, symbol: str) -> float | None:
        """`symbol`'s latest stored score if it is recent enough to be an input, else None."""
        found = self.latest.get(symbol)
        if found is None or self._clock() - found[0] > self._window:
            return None
        return found[1]

    async def poll(self) -> int:
        """Read and publish the rows written since the last poll; how many there were."""
        rows = await asyncio.to_thread(self._read)
        for message in rows:
            if self._hub is not None:
                self._hub.publish(Topic.SENTIMENT, message, symbol=str(message["symbol"]))
            self.published += 1
        return len(rows)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.poll()
            except Exception:  # a process edge: one failed poll must not end the feed
                logger.exception("sentiment.poll_failed")

    def _seed(self) -> None:
        with self._sessions() as session:
            self._after_id = newest_sentiment_id(session)
            for symbol, row in latest_sentiment(session, self._clock()).items():
                self.latest[symbol] = (row.as_of, row.score)

    def _read(self) -> list[dict[str, Any]]:
        out = []
        with self._sessions() as session:
            for row in sentiment_rows_after(session, self._after_id):
                self._after_id = max(self._after_id, row.id)
                known = self.latest.get(row.symbol)
                if known is not None and row.as_of < known[0]:
                    continue  # a backfill's past step: history, not news to push
                self.latest[row.symbol] = (row.as_of, row.score)
                out.append(sentiment_message(row))
        return out
