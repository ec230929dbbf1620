"""The strategy engine (warm path): each pattern signal becomes a scored suggestion.

It tails `signals:global` on the bus, and for each batch of signals:

1. takes the signalling symbols' latest windows from the pattern engine (on the
   event loop, a copy: the engine is fed from the loop and must not be read
   from a thread);
2. asks the served models for the whole batch at once, off the loop
   (`asyncio.to_thread`), bounded by `timeout_s`;
3. joins the symbol's latest sentiment, when a lookup is configured and has one;
4. scores (realtime/strategy/scoring.py), publishes each suggestion on
   `suggestions:global` (the bus bridge carries it to the WebSocket topic
   `suggestions`) and queues it for the `suggestions` table.

Failures: a model that raises, answers NaN or the wrong shape, or does not
answer in time counts against the circuit breaker (breaker.py); while it is
open, and whenever no model is active, suggestions are made from the signal
(and sentiment) alone, and `degraded` says why. A batch never waits on a call
left running by an earlier timeout: that counts as a failure too, so hung
calls cannot pile up threads. The bus being away loses the live publication
(counted), not the row; the database being away holds rows (bounded) until it
is back, and a retried write inserts nothing twice.

Latency is measured from the signal's event time (the tick that fired it) to
the suggestion's publication: the whole warm path, engine and bus included.
A replayed past (a replay source) has old event times; its latencies say
nothing and are not recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries.suggestions import insert_suggestions
from models.bus import SIGNALS_GLOBAL, SUGGESTIONS_GLOBAL, BusMessage
from models.errors import describe_failure
from models.suggestions import SuggestionOut
from realtime.background import BackgroundTask
from realtime.patterns.engine import PatternEngine, ns_to_datetime
from realtime.strategy.breaker import CircuitBreaker
from realtime.strategy.model_set import FloatArray, ModelSet, Served
from realtime.strategy.scoring import Weights, combine, read_answer, signal_value
from services.bus import Bus, BusUnavailableError

logger = logging.getLogger(__name__)

MESSAGE_TYPE = "suggestion"
LIVE_LAG = timedelta(seconds=60)  # an older signal is a replay: its latency is not recorded
SEEN = 20_000  # signal identities remembered, to skip one delivered twice

SentimentLookup = Callable[[str], float | None]


@dataclass(frozen=True)
class _Signal:
    symbol: str
    kind: str
    side: str
    score: float
    ts: datetime


@dataclass
class Batch:
    """One batch's model side: the answers (None: not asked, `why` says so), the windows
    they were given, each symbol's row in them and the event time of its newest tick."""

    answers: Answers | None = None
    windows: FloatArray | None = None
    rows: dict[str, int] | None = None
    as_of: dict[str, datetime] | None = None
    why: str | None = None


@dataclass
class Answers:
    """What the models said for one batch: per name, the served version and its rows."""

    active: dict[str, tuple[Served, FloatArray]]
    challengers: dict[str, tuple[Served, FloatArray]]
    challenger_errors: dict[str, str]


class StrategyEngine:
    def __init__(
        self,
        bus: Bus,
        patterns: PatternEngine,
        models: ModelSet,
        sessions: sessionmaker[Session],
        *,
        weights: Weights | None = None,
        breaker: CircuitBreaker | None = None,
        sentiment: SentimentLookup | None = None,
        timeout_s: float = 0.05,
        refresh_s: float = 30.0,
        flush_interval_s: float = 1.0,
        max_pending: int = 10_000,
        on_latency: Callable[[float], None] | None = None,
    ) -> None:
        self._bus = bus
        self._patterns = patterns
        self.models = models
        self._sessions = sessions
        self.weights = weights or Weights()
        self.breaker = breaker or CircuitBreaker()
        self._sentiment = sentiment
        self._timeout_s = timeout_s
        self._refresh_s = refresh_s
        self._flush_s = flush_interval_s
        self._max_pending = max_pending
        self._on_latency = on_latency
        self._seen: OrderedDict[tuple[str, str, datetime], None] = OrderedDict()
        self._pending: list[dict[str, Any]] = []
        self._inflight: asyncio.Future[Answers] | None = None
        self._pump = BackgroundTask("strategy:signals")
        self._writer = BackgroundTask("strategy:writer")
        self._refresher = BackgroundTask("strategy:models")
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "signals",
                "suggestions",
                "degraded",
                "model_failures",
                "published",
                "publish_failed",
                "written",
                "write_failed",
                "dropped",
                "duplicates",
            ),
            0,
        )

    @property
    def running(self) -> bool:
        return self._pump.running

    def counters_now(self) -> dict[str, float]:
        """A copy of the counters, for /metrics."""
        return {name: float(value) for name, value in self.counters.items()}

    @property
    def pending(self) -> int:
        """Suggestions waiting for the database."""
        return len(self._pending)

    async def start(self) -> None:
        changes = await asyncio.to_thread(self.models.refresh)
        for change in changes:
            logger.info("models.changed", extra={"change": change})
        try:
            async with asyncio.timeout(2.0):
                position: str | None = await self._bus.latest_id(SIGNALS_GLOBAL)
        except (BusUnavailableError, TimeoutError):
            position = None
        self._pump.start(self._consume(position))
        self._writer.start(self._write_loop())
        self._refresher.start(self._refresh_loop())

    async def stop(self) -> None:
        await self._pump.stop()
        await self._refresher.stop()
        await self._writer.stop()
        await self.flush()  # what was queued is written, if the database lets it
        await asyncio.to_thread(self.models.close)

    # -- the loop -------------------------------------------------------------------------

    async def _consume(self, position: str | None) -> None:
        delay = 0.1
        while position is None:
            try:
                position = await self._bus.latest_id(SIGNALS_GLOBAL)
            except BusUnavailableError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        while True:
            try:
                deliveries = await self._bus.tail(SIGNALS_GLOBAL, last_id=position, block_ms=1000)
            except BusUnavailableError:
                await asyncio.sleep(1.0)  # the bus says why in /health; the tail resumes
                continue
            if deliveries:
                position = deliveries[-1].id
                try:
                    await self.handle([d.message for d in deliveries])
                except Exception:  # a process edge: one bad batch must not end the engine
                    logger.exception("strategy.batch_failed")

    async def handle(self, messages: Sequence[BusMessage]) -> list[SuggestionOut]:
        """Score one batch of signal messages; publish and queue each suggestion."""
        signals = [s for s in map(_signal, messages) if s is not None and self._first(s)]
        if not signals:
            return []
        self.counters["signals"] += len(signals)
        batch = await self._ask_models(signals)
        out: list[SuggestionOut] = []
        for signal in signals:
            suggestion = self._suggest(signal, batch)
            out.append(suggestion)
            await self._publish(suggestion)
        return out

    def _first(self, signal: _Signal) -> bool:
        key = (signal.symbol, signal.kind, signal.ts)
        if key in self._seen:
            self.counters["duplicates"] += 1
            return False
        self._seen[key] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return True

    # -- models ---------------------------------------------------------------------------

    async def _ask_models(self, signals: list[_Signal]) -> Batch:
        """The models' answers for the signalling symbols that have a full window."""
        window = self.models.window
        if window == 0:
            return Batch(why="signals only: no active model (a `training` job makes one)")
        if not self.breaker.allow():
            return Batch(why="signals only: " + self.breaker.why_open())
        rows: dict[str, int] = {}
        as_of: dict[str, datetime] = {}
        sids: list[int] = []
        for symbol in dict.fromkeys(s.symbol for s in signals):
            sid = self._patterns.find(symbol)
            if sid is not None and self._patterns.tick_count(sid) >= window:
                rows[symbol] = len(sids)
                as_of[symbol] = ns_to_datetime(self._patterns.last_ts_ns(sid))
                sids.append(sid)
        if not sids:
            return Batch(why=f"signals only: fewer than {window} ticks seen")
        windows = self._patterns.windows(np.asarray(sids, dtype=np.int64), window)
        if self._inflight is not None and not self._inflight.done():
            return self._failed("the previous call has not returned")
        self._inflight = asyncio.ensure_future(asyncio.to_thread(self._infer, windows))
        try:
            async with asyncio.timeout(self._timeout_s):
                answers = await asyncio.shield(self._inflight)
        except TimeoutError:
            return self._failed(f"no answer in {self._timeout_s * 1000:g} ms")
        except Exception as error:
            return self._failed(describe_failure(error))
        self.breaker.succeeded()
        return Batch(answers, windows, rows, as_of)

    def _failed(self, cause: str) -> Batch:
        self.counters["model_failures"] += 1
        self.breaker.failed(cause)
        logger.warning("strategy.models_failed", extra={"cause": cause})
        if self.breaker.state == "open":
            return Batch(why="signals only: " + self.breaker.why_open())
        return Batch(why=f"signals only: the models failed on this batch ({cause})")

    def _infer(self, windows: FloatArray) -> Answers:
        """Every served model on the batch (in a worker thread). An active model's bad answer
        raises; a challenger's is recorded and decides nothing."""
        answers = Answers({}, {}, {})
        for name, served in list(self.models.active.items()):
            answers.active[name] = (served, _run(served, windows))
        for name, served in list(self.models.challengers.items()):
            try:
                answers.challengers[name] = (served, _run(served, windows))
            except Exception as error:
                answers.challenger_errors[name] = describe_failure(error)
        return answers

    # -- one suggestion ---------------------------------------------------------------------

    def _suggest(self, signal: _Signal, batch: Batch) -> SuggestionOut:
        values: dict[str, float | None] = {
            "signal": signal_value(signal.kind, signal.side, signal.score)
        }
        inputs: dict[str, Any] = {
            "signal": {"kind": signal.kind, "side": signal.side, "score": signal.score}
        }
        horizon: int | None = None
        as_of, why = signal.ts, batch.why
        answers, windows = batch.answers, batch.windows
        row = (batch.rows or {}).get(signal.symbol)
        if answers is not None and windows is not None and row is None:
            why = f"signals only: fewer than {windows.shape[1]} ticks of {signal.symbol} seen"
        if answers is not None and windows is not None and row is not None:
            as_of = (batch.as_of or {}).get(signal.symbol, signal.ts)
            for name, (served, scores) in answers.active.items():
                value, said = read_answer(
                    name, served.version, served.window, served.horizon, scores[row], windows[row]
                )
                values[name], inputs[name] = value, said
                horizon = horizon or served.horizon
            trials = {
                name: read_answer(
                    name, served.version, served.window, served.horizon, scores[row], windows[row]
                )[1]
                for name, (served, scores) in answers.challengers.items()
            }
            trials.update({n: {"error": e} for n, e in answers.challenger_errors.items()})
            if trials:
                inputs["challengers"] = trials
        sentiment = self._sentiment(signal.symbol) if self._sentiment is not None else None
        values["sentiment"] = sentiment
        inputs["sentiment"] = sentiment
        scored = combine(values, self.weights)
        now = datetime.now(UTC)
        lag = now - signal.ts
        latency_ms = lag.total_seconds() * 1000 if timedelta(0) <= lag <= LIVE_LAG else None
        if latency_ms is not None and self._on_latency is not None:
            self._on_latency(latency_ms / 1000)
        self.counters["suggestions"] += 1
        if why is not None:
            self.counters["degraded"] += 1
        return SuggestionOut(
            symbol=signal.symbol,
            ts=as_of,
            signal_kind=signal.kind,
            signal_ts=signal.ts,
            direction=scored.direction,
            score=scored.score,
            confidence=scored.confidence,
            horizon=horizon,
            contributions=scored.contributions,
            inputs=inputs,
            degraded=why,
            latency_ms=latency_ms,
        )

    # -- out --------------------------------------------------------------------------------

    async def _publish(self, suggestion: SuggestionOut) -> None:
        data = suggestion.model_dump(mode="json", exclude={"id"})
        try:
            await self._bus.publish(SUGGESTIONS_GLOBAL, BusMessage(type=MESSAGE_TYPE, data=data))
            self.counters["published"] += 1
        except BusUnavailableError:
            self.counters["publish_failed"] += 1
        self._pending.append(suggestion.model_dump(exclude={"id"}))
        if len(self._pending) > self._max_pending:
            excess = len(self._pending) - self._max_pending
            del self._pending[:excess]
            self.counters["dropped"] += excess

    async def flush(self) -> None:
        """Write what is queued; on failure keep it for the next flush."""
        if not self._pending:
            return
        batch = list(self._pending)
        try:
            await asyncio.to_thread(self._insert, batch)
        except Exception as error:
            self.counters["write_failed"] += 1
            logger.warning("strategy.write_failed", extra={"cause": describe_failure(error)})
            return
        del self._pending[: len(batch)]
        self.counters["written"] += len(batch)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        with unit_of_work(self._sessions) as session:
            insert_suggestions(session, rows)

    async def _write_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                changes = await asyncio.to_thread(self.models.refresh)
            except Exception as error:  # the registry unreadable: serve what is loaded
                logger.warning("models.refresh_failed", extra={"cause": describe_failure(error)})
                continue
            for change in changes:
                logger.info("models.changed", extra={"change": change})


def _signal(message: BusMessage) -> _Signal | None:
    data = message.data
    symbol, kind, side, ts = (data.get(k) for k in ("symbol", "kind", "side", "ts"))
    score = data.get("score")
    if not (isinstance(symbol, str) and isinstance(kind, str) and isinstance(side, str)):
        return None
    try:
        when = datetime.fromisoformat(ts) if isinstance(ts, str) else message.ts
    except ValueError:
        return None
    if when.utcoffset() is None:
        return None
    value = float(score) if isinstance(score, int | float) else 0.0
    return _Signal(symbol, kind, side, value, when.astimezone(UTC))


def _run(served: Served, windows: FloatArray) -> FloatArray:
    served.calls += 1
    try:
        scores = np.asarray(served.runner.run(windows[:, -served.window :, :]), dtype=np.float64)
        scores = scores.reshape(windows.shape[0], -1)
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"{served.name} v{served.version} answered NaN or inf")
    except Exception:
        served.errors += 1
        raise
    return scores


def _answer(
    name: str, served: Served, scores: FloatArray, ticks: FloatArray
) -> tuple[float, dict[str, Any]]:
    return read_answer(name, served.version, served.window, served.horizon, scores, ticks)
