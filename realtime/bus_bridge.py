"""Carry bus messages to WebSocket topics, and notice flow results without Redis.

`BusBridge` tails the bus streams the dashboard cares about and republishes
each message on its WebSocket topic (`{"event": <message type>, ...data}`),
filtered by the message's `symbol` if it has one. A tail is a fan-out read, so
every realtime process sees every message; it starts at the stream's newest
id, so a restart does not replay history to live dashboards.

`JobPoller` is for the embedded setup: without Redis, flows run in another
process with their own in-process bus, so the realtime process learns about
job changes by polling the `jobs` table.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from db.queries.jobs import FINISHED, jobs_to_watch, newest_job_id
from models.bus import FILLS_GLOBAL, JOBS_UPDATES, ORDERS_GATEWAY, SIGNALS_GLOBAL
from realtime.background import BackgroundTask
from realtime.ws_hub import Topic, WSHub
from services.bus import Bus, BusUnavailableError

logger = logging.getLogger(__name__)

STREAM_TOPICS = {
    SIGNALS_GLOBAL: Topic.TRADING_SIGNALS,
    ORDERS_GATEWAY: Topic.ORDERS,
    FILLS_GLOBAL: Topic.FILLS,
    JOBS_UPDATES: Topic.JOB_UPDATES,
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
        for stream, topic in STREAM_TOPICS.items():
            self._pumps[stream].start(self._pump(stream, topic))

    async def stop(self) -> None:
        for pump in self._pumps.values():
            await pump.stop()

    async def _pump(self, stream: str, topic: Topic) -> None:
        position = await self._start_position(stream)
        while True:
            for delivery in await self._bus.tail(stream, last_id=position, block_ms=self._block_ms):
                message = delivery.message
                symbol = message.data.get("symbol")
                self._hub.publish(
                    topic,
                    {"event": message.type, **message.data},
                    symbol=symbol if isinstance(symbol, str) else None,
                    ts=message.ts,
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


class JobPoller:
    def __init__(self, sessions: sessionmaker[Session], hub: WSHub, *, interval_s: float = 2.0):
        self._sessions = sessions
        self._hub = hub
        self._interval = interval_s
        self._task = BackgroundTask("job-poller")
        self._after_id = 0
        self._watching: dict[int, tuple[str, str | None]] = {}  # unfinished job -> (status, stage)
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
                stage = (job.result or {}).get("stage")
                seen = (job.status, stage if isinstance(stage, str) else None)
                if self._watching.get(job.id) == seen:
                    continue
                changes.append(
                    {
                        "event": "job.updated",
                        "id": job.id,
                        "type": job.type,
                        "status": str(job.status),
                        "stage": seen[1],
                        "error": job.error,
                        "flow_run_id": job.flow_run_id,
                    }
                )
                if job.status in FINISHED:
                    self._watching.pop(job.id, None)
                else:
                    self._watching[job.id] = seen
        return changes
