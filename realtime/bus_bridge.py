"""Carry bus messages to WebSocket topics, and notice flow results without Redis.

`BusBridge` tails the bus streams the dashboard cares about and republishes
each message on its WebSocket topic (`{"event": <message type>, ...data}`),
filtered by the message's `symbol` if it has one. A tail is a fan-out read, so
every realtime process sees every message; it starts at the stream's newest
id, so a restart does not replay history to live dashboards.

Signals after a bus outage: the sink holds back what it could not publish and
publishes it, in order, once the bus answers (`realtime/patterns/sink.py`); the
tail resumes from the last entry it forwarded, so it forwards those too. A
signal is published on `trading_signals` with its identity as the hub's key,
so one that reaches the stream twice (a retried publish that had landed) goes
to each client once. `signal_backlog` reads the signals table in the same
shape for a subscriber that catches up with `since` (`WSHub.replay`).

`JobPoller` is for the embedded setup: without Redis, flows run in another
process with their own in-process bus, so the realtime process learns about
job changes by polling the `jobs` table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from db.queries.jobs import FINISHED, job_update, jobs_to_watch, newest_job_id
from db.queries.signals import MAX_LIST, signals_since
from models.bus import (
    FILLS_GLOBAL,
    JOBS_UPDATES,
    ORDERS_GATEWAY,
    SIGNALS_GLOBAL,
    SUGGESTIONS_GLOBAL,
    BusMessage,
    SignalKey,
    signal_key,
)
from realtime.background import BackgroundTask
from realtime.patterns.sink import signal_message
from realtime.ws_hub import SymbolFilter, Topic, WSHub
from realtime.ws_recent import Backlog, KeyedMessage
from services.bus import Bus, BusUnavailableError

logger = logging.getLogger(__name__)

STREAM_TOPICS = {
    SIGNALS_GLOBAL: Topic.TRADING_SIGNALS,
    ORDERS_GATEWAY: Topic.ORDERS,
    FILLS_GLOBAL: Topic.FILLS,
    JOBS_UPDATES: Topic.JOB_UPDATES,
    SUGGESTIONS_GLOBAL: Topic.SUGGESTIONS,
}


class BusBridge:
    def __init__(self, bus: Bus, hub: WSHub, *, block_ms: int = 1000) -> None:
        self._bus = bus
        self._hub = hub
        self._block_ms = block_ms
        self._pumps = {stream: BackgroundTask(f"bus:{stream}") for stream in STREAM_TOPICS}
        self.lag_s: dict[str, float] = {}  # now - ts of the newest message seen, per stream
        self.forwarded = 0

    @property
    def running(self) -> bool:
        return any(pump.running for pump in self._pumps.values())

    async def start(self) -> None:
        """Start each tail at its stream's newest entry, read here when the bus answers (so a
        message published once the server is up is never behind a tail's start); a bus
        that is away is left to each pump to wait for, without holding the start-up."""
        for stream, topic in STREAM_TOPICS.items():
            try:
                async with asyncio.timeout(2.0):
                    position: str | None = await self._bus.latest_id(stream)
            except (BusUnavailableError, TimeoutError):
                position = None
            self._pumps[stream].start(self._pump(stream, topic, position))

    async def stop(self) -> None:
        for pump in self._pumps.values():
            await pump.stop()

    async def _pump(self, stream: str, topic: Topic, position: str | None = None) -> None:
        if position is None:
            position = await self._start_position(stream)
        while True:
            for delivery in await self._bus.tail(stream, last_id=position, block_ms=self._block_ms):
                message = delivery.message
                event = ws_event(topic, message)
                self._hub.publish(
                    topic, event.data, symbol=event.symbol, ts=message.ts, key=event.key
                )
                self.lag_s[stream] = (datetime.now(UTC) - message.ts).total_seconds()
                position = delivery.id
                self.forwarded += 1

    async def _start_position(self, stream: str) -> str:
        delay = 0.1
        while True:
            try:
                return await self._bus.latest_id(stream)
            except BusUnavailableError:
                # Prices keep flowing without the bus; /health/redis says why.
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


class WSEvent(NamedTuple):
    data: dict[str, Any]
    symbol: str | None  # for the subscribers' symbol filters
    key: Hashable | None  # the message's identity, on keyed topics


def ws_event(topic: Topic, message: BusMessage) -> WSEvent:
    """A bus message as its WebSocket topic carries it: `{"event": <type>, ...data}`."""
    symbol = message.data.get("symbol")
    key = signal_key(message.data) if topic is Topic.TRADING_SIGNALS else None
    return WSEvent(
        {"event": message.type, **message.data},
        symbol if isinstance(symbol, str) else None,
        key,
    )


def signal_backlog(
    sessions: sessionmaker[Session], since: datetime, symbols: SymbolFilter
) -> Backlog:
    """The stored signals at or after `since` as `trading_signals` would have carried them.

    At most `MAX_LIST`, the newest (see `signals_since`); if older ones were left
    out, the backlog starts at the oldest one sent, so the hub does not add
    older ones from its own record either. Blocking: run it in a thread.
    """
    with sessions() as session:
        rows = signals_since(session, since, symbols=symbols, limit=MAX_LIST + 1)
        truncated = len(rows) > MAX_LIST
        messages: list[KeyedMessage] = []
        for row, strategy in rows[-MAX_LIST:]:
            event = ws_event(Topic.TRADING_SIGNALS, signal_message(row.payload, strategy, row.ts))
            key: SignalKey = (strategy, row.symbol, row.kind, row.ts)  # the table's own key
            messages.append(KeyedMessage(key, event.data, row.symbol, row.ts))
    start = messages[0].ts if truncated else since
    return Backlog(messages, start, truncated)


PROGRESS_FACTS = ("done", "total", "scored", "stored")
"""A running job's progress facts (flows/sentiment.py): announced with the change, as the
flow's own announcement over Redis carries them, so a page needs no read to draw its bar."""


class JobPoller:
    def __init__(self, sessions: sessionmaker[Session], hub: WSHub, *, interval_s: float = 2.0):
        self._sessions = sessions
        self._hub = hub
        self._interval = interval_s
        self._task = BackgroundTask("job-poller")
        self._after_id = 0
        # unfinished job -> (status, stage, steps done): a change of any is announced
        self._watching: dict[int, tuple[str, str | None, int | None]] = {}
        self.polls = 0

    @property
    def running(self) -> bool:
        return self._task.running

    async def start(self) -> None:
        self._after_id = await asyncio.to_thread(self._newest)
        self._task.start(self._loop())

    async def stop(self) -> None:
        await self._task.stop()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            started = time.perf_counter()
            try:
                changes = await asyncio.to_thread(self._poll)
            except Exception:  # a process edge: one failed poll must not end the poller
                logger.exception("jobs.poll_failed")
                continue
            for change in changes:
                self._hub.publish(Topic.JOB_UPDATES, change)
            self.polls += 1
            logger.debug("jobs.polled", extra={"ms": (time.perf_counter() - started) * 1000})

    def _newest(self) -> int:
        with self._sessions() as session:
            return newest_job_id(session)

    def _poll(self) -> list[dict[str, object]]:
        changes: list[dict[str, object]] = []
        with self._sessions() as session:
            for job in jobs_to_watch(session, self._after_id, self._watching):
                self._after_id = max(self._after_id, job.id)
                result = job.result or {}
                stage, done = result.get("stage"), result.get("done")
                seen = (
                    job.status,
                    stage if isinstance(stage, str) else None,
                    done if isinstance(done, int) else None,  # a backfill's steps
                )
                if self._watching.get(job.id) == seen:
                    continue
                progress = {k: result[k] for k in PROGRESS_FACTS if k in result}
                changes.append({"event": "job.updated", **job_update(job, progress).message_data()})
                if job.status in FINISHED:
                    self._watching.pop(job.id, None)
                else:
                    self._watching[job.id] = seen
        return changes
