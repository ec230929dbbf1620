"""Where the engine's signals go: the bus at once, the signals table in batches.

`submit` is called from the tick path and only queues. A background task
publishes every queued signal on `signals:global` and `signals:{SYMBOL}`
(the bus bridge carries the global stream to WebSocket `trading_signals`
subscribers) and writes them to the database every `flush_interval_s`, or
sooner once `batch_size` are waiting.

Failure policy, for a process that runs for weeks: a bus outage drops the
publication (counted; the row is still written); a database outage keeps the
rows and retries them at the next flush, holding at most `max_pending`; past
that the oldest are dropped and counted. Writes are idempotent, so a retried
batch that partly landed inserts nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable

from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.signals import insert_signals, signal_row
from models.bus import SIGNALS_GLOBAL, BusMessage, signals_for
from realtime.background import BackgroundTask
from realtime.patterns.engine import PatternSignal
from services.bus import Bus, BusUnavailableError

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "signal"


class SignalSink:
    def __init__(
        self,
        bus: Bus,
        sessions: sessionmaker[Session],
        strategy_id: int,
        strategy_name: str,
        *,
        flush_interval_s: float = 0.5,
        batch_size: int = 500,
        max_pending: int = 50_000,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._strategy_id = strategy_id
        self._strategy = strategy_name
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._to_publish: deque[PatternSignal] = deque()
        self._to_write: deque[PatternSignal] = deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._task = BackgroundTask("signal-sink")
        self.submitted = self.published = self.written = 0
        self.publish_failures = self.write_failures = self.dropped = 0

    @property
    def running(self) -> bool:
        return self._task.running

    @property
    def pending(self) -> int:
        return len(self._to_write)

    def submit(self, signals: Iterable[PatternSignal]) -> None:
        """Queue signals; never blocks and never raises (it sits on the tick path)."""
        for signal in signals:
            self._to_publish.append(signal)
            if len(self._to_write) == self._to_write.maxlen:
                self.dropped += 1
            self._to_write.append(signal)
            self.submitted += 1
        self._wake.set()

    async def start(self) -> None:
        self._task.start(self._loop())

    async def stop(self) -> None:
        """Stop the loop, then publish and write what is still queued (one attempt)."""
        await self._task.stop()
        await self._publish()
        await self._flush()

    async def _loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            self._wake.clear()
            await self._publish()
            now = time.monotonic()
            if self._to_write and (
                len(self._to_write) >= self._batch_size or now - last_flush >= self._interval
            ):
                await self._flush()
                last_flush = now

    async def _publish(self) -> None:
        while self._to_publish:
            signal = self._to_publish.popleft()
            message = BusMessage(
                type=MESSAGE_TYPE,
                ts=signal.ts,
                data={**signal.as_message(), "strategy": self._strategy},
            )
            try:
                await self._bus.publish(SIGNALS_GLOBAL, message)
                await self._bus.publish(signals_for(signal.symbol), message)
            except BusUnavailableError:
                self.publish_failures += 1
                continue
            self.published += 1

    async def _flush(self) -> None:
        batch = list(self._to_write)
        if not batch:
            return
        rows = [
            signal_row(
                self._strategy_id,
                s.symbol,
                s.kind.value,
                s.side,
                s.score,
                s.ts,
                s.as_message(),
            )
            for s in batch
        ]
        try:
            written = await asyncio.to_thread(self._write, rows)
        except Exception:  # a process edge: keep the rows, retry at the next flush
            self.write_failures += 1
            logger.exception("signals.write_failed", extra={"pending": len(batch)})
            return
        for _ in batch:
            self._to_write.popleft()
        self.written += written

    def _write(self, rows: list[dict[str, object]]) -> int:
        with unit_of_work(self._sessions) as session:
            return insert_signals(session, rows)
