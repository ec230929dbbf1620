"""Replay stored bars as ticks, paced by their own timestamps: a `MarketDataSource`.

Owns turning bars (from the `bars` table or a bar file) into a timed tick
stream and the asyncio task that plays it. Timing lives in the pure generator
`schedule()`, which yields (wall seconds to wait, tick) pairs; the task only
sleeps and delivers, so the pacing is testable without a clock.

* One tick per bar at the bar's close, or with `ohlc=True` four ticks per bar
  spread evenly over the bar interval: open at +0, then low and high (high
  first on a down bar, so the path is plausible), close at +3/4.
* `speed` 1.0 is real time; 60 plays a 1-minute bar per second. A gap longer
  than `max_gap_s` wall seconds (nights, weekends, missing data) is cut to it.
* Ticks carry the *original* bar timestamps (with `ohlc`, stamp plus offset):
  it is a replay, and downstream code sees the market's time, not ours.
  With `loop=True` every later pass is shifted by a whole number of weeks, so
  time still moves forward (the PriceCache ignores older ticks) and weekday and
  time of day stay as recorded.

Not here: validation of a file's rows (that is the importer's job; rows with
a missing time or price are skipped and counted in a warning), resampling,
and market hours.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Self

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.enums import Timeframe
from models.market import Bar
from models.market_data import Tick
from realtime.background import BackgroundTask
from realtime.sources.base import TickHandler
from services.vendors.bar_file import read_bar_file

logger = logging.getLogger(__name__)

_WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ReplayBar:
    """One bar to replay; `ts` is its interval start, aware UTC."""

    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class ReplaySource:
    """Plays bars once (then `running` turns False) or in a loop.

    `add_symbol`/`remove_symbol` filter what is delivered; the replay cannot
    invent data, so adding a symbol without bars logs a warning and ticks nothing.
    If `on_tick` raises (the contract says it must not), the task ends and
    `stop()` re-raises it.
    """

    name = "replay"

    def __init__(
        self,
        bars: Iterable[ReplayBar],
        *,
        timeframe: Timeframe,
        speed: float = 1.0,
        max_gap_s: float = 5.0,
        loop: bool = False,
        ohlc: bool = False,
    ) -> None:
        if speed <= 0 or max_gap_s < 0:
            raise ValueError(f"need speed > 0 and max_gap_s >= 0, got {speed}, {max_gap_s}")
        self.timeframe = timeframe
        self.speed = speed
        self.max_gap_s = max_gap_s
        self.loop = loop
        self._ticks = sorted(
            (t for bar in bars for t in _bar_ticks(bar, timeframe.duration, ohlc)),
            key=lambda t: (t.ts, t.symbol),
        )
        self._with_data = frozenset(t.symbol for t in self._ticks)
        self._active = set(self._with_data)
        self._pass_shift = _whole_weeks(self._ticks, timeframe.duration)
        self._task = BackgroundTask("replay")

    @classmethod
    def from_database(
        cls,
        session: Session,
        symbols: Sequence[str],
        timeframe: Timeframe,
        start: datetime,
        end: datetime,
        *,
        speed: float = 1.0,
        max_gap_s: float = 5.0,
        loop: bool = False,
        ohlc: bool = False,
    ) -> Self:
        """Bars of `symbols` with `start <= ts < end`, read once, now."""
        bars = _select_bars(session, symbols, timeframe, start, end)
        return cls(
            bars, timeframe=timeframe, speed=speed, max_gap_s=max_gap_s, loop=loop, ohlc=ohlc
        )

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        timeframe: Timeframe,
        symbol: str | None = None,
        symbol_column: str = "symbol",
        tz: str = "UTC",
        speed: float = 1.0,
        max_gap_s: float = 5.0,
        loop: bool = False,
        ohlc: bool = False,
    ) -> Self:
        """Bars of a CSV/Parquet file in any layout `read_bar_file` knows."""
        frame = read_bar_file(
            path, timeframe=timeframe, symbol_column=symbol_column, symbol=symbol, tz=tz
        )
        prices = frame[["open", "high", "low", "close"]]
        usable = frame["ts"].notna() & (prices > 0).all(axis=1)
        if skipped := int((~usable).sum()):
            logger.warning("replay.rows_skipped", extra={"path": str(path), "rows": skipped})
        bars = [
            ReplayBar(sym, ts.to_pydatetime(), float(o), float(h), float(lo), float(c), _volume(v))
            for sym, ts, o, h, lo, c, v in frame.loc[
                usable, ["symbol", "ts", "open", "high", "low", "close", "volume"]
            ].itertuples(index=False)
        ]
        return cls(
            bars, timeframe=timeframe, speed=speed, max_gap_s=max_gap_s, loop=loop, ohlc=ohlc
        )

    @property
    def running(self) -> bool:
        return self._task.running

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._active)

    def schedule(self) -> Iterator[tuple[float, Tick]]:
        """(wall seconds to wait after the previous tick, tick), in replay order.

        The wait is the timestamp gap to the previous *delivered* tick divided
        by `speed`, capped at `max_gap_s`; the first tick waits 0. Endless with
        `loop`, except that a pass delivering nothing (every symbol removed) ends it.
        """
        previous: datetime | None = None
        shift = timedelta(0)
        while True:
            delivered = False
            for tick in self._ticks:
                if tick.symbol not in self._active:
                    continue
                ts = tick.ts + shift
                gap = 0.0 if previous is None else (ts - previous).total_seconds() / self.speed
                previous, delivered = ts, True
                yield min(gap, self.max_gap_s), Tick(tick.symbol, tick.price, tick.size, ts)
            if not (self.loop and delivered):
                return
            shift += self._pass_shift

    async def start(self, on_tick: TickHandler) -> None:
        self._task.start(self._run(on_tick))
        logger.info("replay.started", extra={"ticks": len(self._ticks), "speed": self.speed})

    async def stop(self) -> None:
        await self._task.stop()
        logger.info("replay.stopped")

    def add_symbol(self, symbol: str) -> None:
        symbol = symbol.strip().upper()
        if symbol not in self._with_data:
            logger.warning("replay.symbol_without_data", extra={"symbol": symbol})
        self._active.add(symbol)

    def remove_symbol(self, symbol: str) -> None:
        self._active.discard(symbol.strip().upper())

    async def _run(self, on_tick: TickHandler) -> None:
        """Deliver on a schedule of loop time: waits add up to the replay's timeline.

        A loop stalled for more than `max_gap_s` restarts the schedule from now
        rather than bursting the backlog.
        """
        loop = asyncio.get_running_loop()
        due = loop.time()
        for wait, tick in self.schedule():
            due += wait
            late = loop.time() - due
            if late > self.max_gap_s:
                due += late
            # sleep(0) still yields, so a fast replay never holds the loop for a whole pass.
            await asyncio.sleep(max(-late, 0.0))
            on_tick(tick)
        logger.info("replay.finished", extra={"ticks": len(self._ticks)})


def _bar_ticks(bar: ReplayBar, duration: timedelta, ohlc: bool) -> list[Tick]:
    if not ohlc:
        return [Tick(bar.symbol, bar.close, bar.volume, bar.ts)]
    middle = (bar.low, bar.high) if bar.close >= bar.open else (bar.high, bar.low)
    prices = (bar.open, *middle, bar.close)
    step = duration / 4
    return [Tick(bar.symbol, p, bar.volume / 4, bar.ts + k * step) for k, p in enumerate(prices)]


def _volume(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    return 0.0 if math.isnan(number) else number


def _whole_weeks(ticks: Sequence[Tick], duration: timedelta) -> timedelta:
    """The shift of one looped pass: whole weeks covering the data plus one bar."""
    if not ticks:
        return _WEEK
    span = ticks[-1].ts - ticks[0].ts + duration
    return _WEEK * max(1, math.ceil(span / _WEEK))


def _select_bars(
    session: Session, symbols: Sequence[str], timeframe: Timeframe, start: datetime, end: datetime
) -> list[ReplayBar]:
    """A plain range read of `bars`: a replay wants the recorded past, not a point-in-time view."""
    stmt = (
        select(Bar.symbol, Bar.ts, Bar.open, Bar.high, Bar.low, Bar.close, Bar.volume)
        .where(
            Bar.symbol.in_([s.strip().upper() for s in symbols]),
            Bar.timeframe == timeframe,
            Bar.ts >= start,
            Bar.ts < end,
        )
        .order_by(Bar.ts, Bar.symbol)
    )
    return [
        ReplayBar(sym, ts, float(o), float(h), float(lo), float(c), float(v))
        for sym, ts, o, h, lo, c, v in session.execute(stmt)
    ]
