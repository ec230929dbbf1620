"""Where the engine's signals go: the bus at once, the signals table in batches.

`submit` is called from the tick path and only queues. A background task
publishes every queued signal on `signals:global` and `signals:{SYMBOL}`
(the bus bridge carries the global stream to WebSocket `trading_signals`
subscribers) and writes them to the database every `flush_interval_s`, or
sooner once `batch_size` are waiting.

Failure policy, for a process that runs for weeks:

* A bus outage holds the publications back, it does not lose them. The
  first failed publish pauses publishing; the sink retries the oldest held
  signal with a capped, doubling backoff, and once the bus answers it
  publishes the held ones in their original order, then the new ones behind
  them (counted as `republished`). A signal published on one stream before
  the failure is not published there again. At most `max_unpublished` are
  held; past that the oldest are dropped and counted (`publish_dropped`):
  subscribers can still fetch them with `since` (WebSocket) or GET /api/signals.
  A publish that timed out may still have landed, so a retry can put a signal
  on a stream twice: consumers recognise it by `models.bus.signal_key`
  (the WebSocket hub does).
* A database outage keeps the rows and retries them at the next flush,
  holding at most `max_pending`; past that the oldest are dropped and counted.
  Writes are idempotent, so a retried batch that partly landed inserts
  nothing twice.

Why hold in the sink rather than backfill the WebSocket topic from the table
once the bus is back: the sink has every signal in memory at once and in
engine order, while a row is written up to a flush interval later (or much
later, if the database is also away); and republishing on the bus reaches
every consumer of the streams, not only this process's WebSocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.signals import insert_signals, signal_row
from models.bus import SIGNALS_GLOBAL, BusMessage, signals_for
from realtime.background import BackgroundTask
from realtime.patterns.engine import PatternSignal
from services.bus import Bus, BusUnavailableError

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "signal"


def signal_message(body: dict[str, Any], strategy: str, ts: datetime) -> BusMessage:
    """The bus message of a signal: `body` is `PatternSignal.as_message()` (also the row's
    `payload`), so a signal read back from the table looks exactly like the live one."""
    return BusMessage(type=MESSAGE_TYPE, ts=ts, data={**body, "strategy": strategy})


@dataclass(slots=True)
class _Publication:
    """One signal on its way to the bus; the message is built off the tick path, once."""

    signal: PatternSignal
    held: bool  # an outage delayed it
    message: BusMessage | None = None
    streams: list[str] = field(default_factory=list)  # still to publish on, in order


@dataclass(slots=True)
class _Backoff:
    initial_s: float
    max_s: float
    delay_s: float = 0.0
    retry_at: float = 0.0  # time.monotonic()

    def failed(self) -> None:
        self.delay_s = min(self.max_s, self.delay_s * 2 if self.delay_s else self.initial_s)
        self.retry_at = time.monotonic() + self.delay_s

    def reset(self) -> None:
        self.delay_s = self.retry_at = 0.0

    def waiting(self) -> bool:
        return time.monotonic() < self.retry_at


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
        max_unpublished: int = 50_000,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 2.0,
    ) -> None:
        self._bus = bus
        self._sessions = sessions
        self._strategy_id = strategy_id
        self._strategy = strategy_name
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._max_unpublished = max_unpublished
        self._to_publish: deque[_Publication] = deque()
        self._to_write: deque[PatternSignal] = deque(maxlen=max_pending)
        self._retry = _Backoff(retry_initial_s, retry_max_s)
        self._holding = False  # an outage is holding publications back
        self._wake = asyncio.Event()
        self._task = BackgroundTask("signal-sink")
        self.submitted = self.published = self.written = 0
        self.publish_failures = self.write_failures = self.dropped = 0
        self.republished = self.publish_dropped = 0

    @property
    def running(self) -> bool:
        return self._task.running

    @property
    def pending(self) -> int:
        """Signals not yet written to the table."""
        return len(self._to_write)

    @property
    def unpublished(self) -> int:
        """Signals not yet published on every stream (held back by an outage, or just queued)."""
        return len(self._to_publish)

    def submit(self, signals: Iterable[PatternSignal]) -> None:
        """Queue signals; never blocks and never raises (it sits on the tick path)."""
        for signal in signals:
            if len(self._to_publish) >= self._max_unpublished:
                self._to_publish.popleft()
                self.publish_dropped += 1
            self._to_publish.append(_Publication(signal, self._holding))
            if len(self._to_write) == self._to_write.maxlen:
                self.dropped += 1
            self._to_write.append(signal)
            self.submitted += 1
        self._wake.set()

    async def start(self) -> None:
        self._task.start(self._loop())

    async def stop(self) -> None:
        """Stop the loop, then publish and write what is still queued (one attempt each).

        Publications still held after that attempt are lost with the process:
        counted in `publish_dropped` (their rows are written if the database answers).
        """
        await self._task.stop()
        self._retry.reset()
        await self._publish()
        await self._flush()
        if self._to_publish:
            logger.warning("signals.unpublished_at_stop", extra={"count": len(self._to_publish)})
            self.publish_dropped += len(self._to_publish)
            self._to_publish.clear()

    async def _loop(self) -> None:
        last_flush = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):  # not wait_for: see realtime/pacer.py
                    await self._wake.wait()
            self._wake.clear()
            await self._publish()
            now = time.monotonic()
            if self._to_write and (
                len(self._to_write) >= self._batch_size or now - last_flush >= self._interval
            ):
                await self._flush()
                last_flush = now

    async def _publish(self) -> None:
        """Publish the queue in order; on an outage stop at the head and retry it later."""
        if self._retry.waiting():
            return
        while self._to_publish:
            head = self._to_publish[0]
            try:
                await self._publish_one(head)
            except BusUnavailableError as exc:
                self._hold(str(exc))
                return
            if self._to_publish and self._to_publish[0] is head:  # `submit` may have dropped it
                self._to_publish.popleft()
            self.published += 1
            self.republished += head.held
        if self._holding:
            logger.info("signals.publish_resumed", extra={"republished": self.republished})
            self._holding = False
        self._retry.reset()

    async def _publish_one(self, publication: _Publication) -> None:
        """Publish on each stream not done yet; a retry skips the streams that took it."""
        if publication.message is None:
            signal = publication.signal
            publication.message = signal_message(signal.as_message(), self._strategy, signal.ts)
            publication.streams = [SIGNALS_GLOBAL, signals_for(signal.symbol)]
        while publication.streams:
            await self._bus.publish(publication.streams[0], publication.message)
            publication.streams.pop(0)

    def _hold(self, why: str) -> None:
        """The bus is away: keep everything queued and retry later, with backoff."""
        self.publish_failures += 1
        self._retry.failed()
        if self._holding:
            return
        logger.warning("signals.publish_held", extra={"queued": len(self._to_publish), "why": why})
        self._holding = True
        for publication in self._to_publish:
            publication.held = True

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
