"""Roll live ticks into 1-minute bars and write the complete ones in batches.

A bar is written only once its minute is over (point in time: a bar exists
when it is known), either because a tick of a later minute arrived or because
the wall clock passed the minute's end plus a grace period (a symbol that
stops trading still gets its last bar). Ticks older than the open bar are
late and counted, not merged. Writes go through `upsert_bars` in a worker
thread, so a restart that re-sends a minute updates rather than duplicates.

Only live sources feed this (see docs/decisions/0005): simulated prices must
never become bars next to real ones.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.bars import upsert_bars
from db.queries.instruments import ensure_instruments
from models.enums import Timeframe
from models.market_data import Tick
from realtime.background import BackgroundTask

logger = logging.getLogger(__name__)

MINUTE = timedelta(minutes=1)


@dataclass(slots=True)
class MinuteBar:
    symbol: str
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class MinuteBarAggregator:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        flush_every_s: float = 5.0,
        grace: timedelta = timedelta(seconds=2),
    ) -> None:
        self._sessions = sessions
        self._flush_every = flush_every_s
        self._grace = grace
        self._open: dict[str, MinuteBar] = {}
        self._complete: list[MinuteBar] = []
        self._task = BackgroundTask("bar-aggregator")
        self.late_ticks = 0
        self.bars_written = 0

    def add(self, tick: Tick) -> None:
        start = tick.ts.replace(second=0, microsecond=0)
        bar = self._open.get(tick.symbol)
        if bar is not None and start < bar.start:
            self.late_ticks += 1
            return
        if bar is None or start > bar.start:
            if bar is not None:
                self._complete.append(bar)
            self._open[tick.symbol] = MinuteBar(
                tick.symbol, start, tick.price, tick.price, tick.price, tick.price, tick.size
            )
            return
        bar.high = max(bar.high, tick.price)
        bar.low = min(bar.low, tick.price)
        bar.close = tick.price
        bar.volume += tick.size

    def close_finished(self, now: datetime) -> list[MinuteBar]:
        """Move bars whose minute ended (plus grace) to the complete list; return all complete."""
        for symbol, bar in list(self._open.items()):
            if bar.start + MINUTE + self._grace <= now:
                self._complete.append(self._open.pop(symbol))
        done, self._complete = self._complete, []
        return done

    async def start(self) -> None:
        self._task.start(self._flush_loop())

    async def stop(self) -> None:
        """Stop and write what is complete; the minute still running is not a bar yet."""
        await self._task.stop()
        await self.flush(datetime.now(UTC))

    async def flush(self, now: datetime) -> int:
        bars = self.close_finished(now)
        if bars:
            await asyncio.to_thread(self.write, bars)
        return len(bars)

    def write(self, bars: list[MinuteBar]) -> None:
        frame = pd.DataFrame(
            {
                "symbol": [b.symbol for b in bars],
                "ts": pd.to_datetime([b.start for b in bars], utc=True).astype(
                    "datetime64[us, UTC]"
                ),
                "open": [b.open for b in bars],
                "high": [b.high for b in bars],
                "low": [b.low for b in bars],
                "close": [b.close for b in bars],
                "adj_close": [None] * len(bars),
                "volume": [b.volume for b in bars],
            }
        ).drop_duplicates(subset=["symbol", "ts"], keep="last")
        with unit_of_work(self._sessions) as session:
            ensure_instruments(session, frame["symbol"].unique().tolist())
            upsert_bars(session, frame, Timeframe.M1)
        self.bars_written += len(frame)
        logger.info("bars.aggregated", extra={"bars": len(frame)})

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            try:
                await self.flush(datetime.now(UTC))
            except Exception:  # a process edge: a failed write must not stop prices
                logger.exception("bars.flush_failed")
