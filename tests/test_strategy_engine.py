"""The strategy engine on both databases: signals + served models -> scored suggestions,
published on the bus and written once; what it does when models are absent, slow, failing,
answering NaN, promoted while serving, or on trial as a challenger."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import unit_of_work
from db.queries import model_registry as registry
from db.queries.instruments import ensure_instruments
from db.queries.sentiment import store_sentiment
from models.bus import SUGGESTIONS_GLOBAL
from models.enums import ModelStatus, Side
from models.sentiment import SymbolSentiment
from models.suggestions import Suggestion
from realtime.patterns.config import PatternConfig, SignalKind
from realtime.patterns.engine import PatternEngine, PatternSignal, datetime_to_ns
from realtime.patterns.sink import signal_message
from realtime.sentiment_feed import SentimentFeed
from realtime.strategy.breaker import CircuitBreaker
from realtime.strategy.engine import StrategyEngine
from realtime.strategy.model_set import ModelSet
from services.bus.memory import InProcessBus
from services.inference.onnx_runner import OnnxRunner
from tests.onnx_models import constant_model

WINDOW = 16
UP = [0.1, 0.2, 0.7]  # the classifier: down, flat, up


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _register(
    sessions: sessionmaker[Session],
    path: Path,
    name: str,
    row: list[float],
    *,
    ab: bool = False,
    window: int = WINDOW,
) -> int:
    constant_model(path, window=window, row=row)
    with unit_of_work(sessions) as session:
        version = registry.register(
            session,
            name=name,
            kind=name,
            onnx_path=str(path),
            onnx_sha256="0" * 64,
            data_hash="0" * 64,
            data_from=datetime(2015, 1, 1, tzinfo=UTC),
            data_to=datetime(2020, 1, 1, tzinfo=UTC),
            params={"window": window, "horizon": len(row) if name == "forecaster" else 5},
            metrics={"mase": 0.9 - 0.01 * len(str(path)), "log_loss": 1.0},
        )
        number = version.version
        metric = "mase" if name == "forecaster" else "log_loss"
        if ab:
            registry.promote(session, name, number, metric=metric, ab=True)
        else:
            current = registry.active(session, name)
            if current is not None:  # make way: the registry's rule is tested elsewhere
                current.status = ModelStatus.RETIRED
                session.flush()
            version.status = ModelStatus.ACTIVE
    return number


def _patterns(ticks: int = 40, symbols: tuple[str, ...] = ("AAPL", "MSFT")) -> PatternEngine:
    engine = PatternEngine(PatternConfig(), capacity=8)
    start = datetime.now(UTC) - timedelta(seconds=ticks)
    for i in range(ticks):
        for j, symbol in enumerate(symbols):
            price = 100.0 + j + 0.05 * i + 0.3 * np.sin(i)
            engine.on_tick(symbol, price, 100.0 + i, datetime_to_ns(start + timedelta(seconds=i)))
    return engine


def _message(symbol: str = "AAPL", side: Side = Side.BUY, seconds_ago: float = 0.01) -> Any:
    ts = datetime.now(UTC) - timedelta(seconds=seconds_ago)
    signal = PatternSignal.of(
        symbol=symbol,
        kind=SignalKind.ZSCORE_BREAKOUT,
        side=side,
        score=3.0,
        price=101.0,
        size=500.0,
        ts_ns=datetime_to_ns(ts),
        features={},
    )
    return signal_message(signal.as_message(), "pattern_engine", signal.ts)


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture
def engine_for(sessions: sessionmaker[Session], bus: InProcessBus) -> Iterator[Any]:
    made: list[StrategyEngine] = []

    def build(**options: Any) -> StrategyEngine:
        models = ModelSet(sessions)
        models.refresh()
        options.setdefault("timeout_s", 5.0)
        engine = StrategyEngine(bus, _patterns(), models, sessions, **options)
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.models.close()


def _rows(sessions: sessionmaker[Session]) -> list[Suggestion]:
    with sessions() as session:
        rows = list(session.scalars(select(Suggestion).order_by(Suggestion.id)))
        session.expunge_all()
        return rows


def test_a_signal_becomes_a_scored_suggestion_published_and_written_once(
    sessions: sessionmaker[Session], bus: InProcessBus, engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "f.onnx", "forecaster", [0.004, 0.004, 0.004])
    _register(sessions, tmp_path / "c.onnx", "pattern_classifier", UP)
    engine: StrategyEngine = engine_for()
    latencies: list[float] = []
    engine._on_latency = latencies.append
    message = _message()

    async def run() -> list[Any]:
        first = await engine.handle([message])
        again = await engine.handle([message])  # delivered twice: scored once
        assert again == []
        await engine.flush()
        await engine.flush()
        return first

    (suggestion,) = asyncio.run(run())
    assert suggestion.direction == "buy"
    assert suggestion.degraded is None
    shares = suggestion.contributions
    assert shares["sentiment"] is None  # no sentiment source configured
    assert all(shares[k] is not None and shares[k] > 0 for k in ("signal", "forecaster"))
    assert shares["pattern_classifier"] == pytest.approx(0.25 / 0.9 * 0.6)  # P(up) - P(down)
    assert suggestion.score == pytest.approx(sum(v for v in shares.values() if v is not None))
    assert suggestion.confidence == pytest.approx(abs(suggestion.score))
    assert suggestion.horizon == 3  # the forecaster's
    assert suggestion.inputs["forecaster"]["version"] == 1
    assert suggestion.inputs["forecaster"]["return"] == pytest.approx(0.012, rel=1e-5)
    assert suggestion.inputs["pattern_classifier"]["probs"]["up"] == pytest.approx(0.7)
    assert suggestion.ts > suggestion.signal_ts - timedelta(seconds=60)  # as of the newest tick
    assert suggestion.latency_ms is not None
    assert latencies == [suggestion.latency_ms / 1000]
    published = asyncio.run(bus.tail(SUGGESTIONS_GLOBAL, last_id="0-0", block_ms=0))
    assert [d.message.data["symbol"] for d in published] == ["AAPL"]
    assert published[0].message.data["direction"] == "buy"
    (row,) = _rows(sessions)
    assert (row.symbol, row.direction, row.signal_kind) == ("AAPL", "buy", "zscore_breakout")
    assert row.score == pytest.approx(suggestion.score)
    assert engine.counters["duplicates"] == 1
    assert engine.counters["written"] == 1


def test_without_a_model_the_signal_alone_decides_and_says_so(
    sessions: sessionmaker[Session], engine_for: Any
) -> None:
    engine: StrategyEngine = engine_for()
    (suggestion,) = asyncio.run(engine.handle([_message(side=Side.SELL)]))
    assert suggestion.direction == "sell"
    assert suggestion.degraded is not None
    assert "no active model" in suggestion.degraded
    assert suggestion.contributions["forecaster"] is None
    assert suggestion.contributions["signal"] == pytest.approx(suggestion.score)
    assert suggestion.horizon is None


class Failing:
    """A runner whose calls raise: the model edge, not our code."""

    name = "broken"

    def __init__(self, window: int) -> None:
        self.window = window
        self.calls = 0

    def run(self, windows: Any) -> Any:
        self.calls += 1
        raise RuntimeError("CUDA error: device lost")


def test_repeated_failures_open_the_breaker_and_the_engine_goes_on_without_models(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "c.onnx", "pattern_classifier", UP)
    clock = Clock()
    engine: StrategyEngine = engine_for(breaker=CircuitBreaker(3, 30.0, clock=clock))
    failing = Failing(WINDOW)
    engine.models.active["pattern_classifier"].runner = failing

    async def batches(n: int) -> list[Any]:
        out = []
        for _ in range(n):
            out += await engine.handle([_message()])
        return out

    made = asyncio.run(batches(5))
    assert failing.calls == 3  # the third failure opened it; the next two did not ask
    assert [s.degraded is not None for s in made] == [True] * 5
    assert "device lost" in (made[0].degraded or "")
    assert "models paused after 3 failures" in (made[-1].degraded or "")
    assert all(s.direction == "buy" for s in made)  # the signal still speaks
    assert engine.breaker.state == "open"
    assert engine.counters["model_failures"] == 3
    clock.now = 31.0  # the cooldown is over: one batch is let through, and fails again
    asyncio.run(batches(2))
    assert failing.calls == 4
    assert engine.breaker.state == "open"
    clock.now = 62.0  # the model is back: the trial batch succeeds and closes the breaker
    engine.models.active["pattern_classifier"].runner = OnnxRunner(
        tmp_path / "c.onnx", name="c", window=WINDOW
    )
    (healed,) = asyncio.run(batches(1))
    assert healed.degraded is None
    assert engine.breaker.state == "closed"


class Hanging:
    """A runner that answers only when the test lets it."""

    name = "hanging"

    def __init__(self, window: int) -> None:
        self.window = window
        self.calls = 0
        self.release = threading.Event()

    def run(self, windows: Any) -> Any:
        self.calls += 1
        self.release.wait(30)
        return np.tile(np.array([UP]), (windows.shape[0], 1))


def test_a_hung_model_costs_one_thread_and_each_batch_waits_only_its_timeout(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "c.onnx", "pattern_classifier", UP)
    engine: StrategyEngine = engine_for(timeout_s=0.05, breaker=CircuitBreaker(10, 30.0))
    hanging = Hanging(WINDOW)
    engine.models.active["pattern_classifier"].runner = hanging

    async def run() -> list[Any]:
        out = []
        try:
            for _ in range(3):
                out += await engine.handle([_message()])
        finally:
            hanging.release.set()  # before the loop closes: it waits for its threads
        return out

    first, second, third = asyncio.run(run())
    assert hanging.calls == 1  # the later batches did not pile a second call on it
    assert "no answer in 50 ms" in (first.degraded or "")
    assert "has not returned" in (second.degraded or "")
    assert "has not returned" in (third.degraded or "")


def test_a_model_answering_nan_is_a_failure_not_a_score(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "c.onnx", "pattern_classifier", [0.1, float("nan"), 0.9])
    engine: StrategyEngine = engine_for()
    (suggestion,) = asyncio.run(engine.handle([_message()]))
    assert "NaN" in (suggestion.degraded or "")
    assert suggestion.contributions["pattern_classifier"] is None
    assert engine.counters["model_failures"] == 1


def test_a_promotion_is_served_by_the_same_runner_without_a_restart(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "f1.onnx", "forecaster", [0.002, 0.002, 0.002])
    engine: StrategyEngine = engine_for()
    runner = engine.models.active["forecaster"].runner
    (before,) = asyncio.run(engine.handle([_message()]))
    _register(sessions, tmp_path / "f2.onnx", "forecaster", [-0.01, -0.01, -0.01])
    assert engine.models.refresh() == ["forecaster: v2 served (was v1)"]
    assert engine.models.active["forecaster"].runner is runner  # loaded in place
    (after,) = asyncio.run(engine.handle([_message(symbol="MSFT")]))
    assert before.inputs["forecaster"]["version"] == 1
    assert after.inputs["forecaster"]["version"] == 2
    assert after.inputs["forecaster"]["return"] == pytest.approx(-0.03, rel=1e-5)
    assert after.contributions["forecaster"] is not None
    assert after.contributions["forecaster"] < 0
    # A version whose file is gone is not served, and the one serving goes on.
    (tmp_path / "f3.onnx").write_bytes(b"not a model")
    with unit_of_work(sessions) as session:
        row = registry.register(
            session,
            name="forecaster",
            kind="forecaster",
            onnx_path=str(tmp_path / "f3.onnx"),
            onnx_sha256="1" * 64,
            data_hash="1" * 64,
            data_from=datetime(2015, 1, 1, tzinfo=UTC),
            data_to=datetime(2020, 1, 1, tzinfo=UTC),
            params={"window": WINDOW, "horizon": 3},
            metrics={"mase": 0.1},
        )
        registry.active(session, "forecaster").status = ModelStatus.RETIRED  # type: ignore[union-attr]
        session.flush()
        row.status = ModelStatus.ACTIVE
    assert engine.models.refresh() == []
    assert engine.models.active["forecaster"].version == 2
    assert "v3 not served" in engine.models.load_errors["forecaster"]


def test_a_challenger_is_scored_beside_the_active_version_and_decides_nothing(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "c1.onnx", "pattern_classifier", UP)
    engine_alone: StrategyEngine = engine_for()
    (alone,) = asyncio.run(engine_alone.handle([_message()]))
    _register(sessions, tmp_path / "c2.onnx", "pattern_classifier", [0.8, 0.1, 0.1], ab=True)
    engine: StrategyEngine = engine_for()
    (suggestion,) = asyncio.run(engine.handle([_message()]))
    trial = suggestion.inputs["challengers"]["pattern_classifier"]
    assert trial["version"] == 2
    assert trial["probs"]["down"] == pytest.approx(0.8)
    assert suggestion.score == pytest.approx(alone.score)  # the active version decides


def test_signals_of_symbols_without_a_full_window_are_scored_from_the_signal(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    _register(sessions, tmp_path / "c.onnx", "pattern_classifier", UP)
    engine: StrategyEngine = engine_for()
    full, unseen = asyncio.run(engine.handle([_message("AAPL"), _message("ZZZZ")]))
    assert full.degraded is None
    assert unseen.degraded is not None
    assert "ZZZZ" not in str(full.degraded)
    assert "ticks" in unseen.degraded
    assert unseen.contributions["pattern_classifier"] is None


def test_a_replayed_signal_has_no_latency(sessions: sessionmaker[Session], engine_for: Any) -> None:
    engine: StrategyEngine = engine_for()
    (old,) = asyncio.run(engine.handle([_message(seconds_ago=3600)]))
    assert old.latency_ms is None


def test_rows_wait_for_the_database_and_land_once(
    sessions: sessionmaker[Session], engine_for: Any
) -> None:
    engine: StrategyEngine = engine_for()
    asyncio.run(engine.handle([_message("AAPL"), _message("MSFT")]))
    real = engine._sessions

    def down() -> Session:
        raise ConnectionError("database is away")

    engine._sessions = down  # type: ignore[assignment]
    asyncio.run(engine.flush())
    assert engine.pending == 2
    assert engine.counters["write_failed"] == 1
    engine._sessions = real
    asyncio.run(engine.flush())
    asyncio.run(engine.flush())
    assert engine.pending == 0
    assert len(_rows(sessions)) == 2
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suggestion)) == 2


def test_a_raced_models_paths_are_counted_for_metrics(
    sessions: sessionmaker[Session], engine_for: Any, tmp_path: Path
) -> None:
    from services.inference.racing import RacingRunner

    _register(sessions, tmp_path / "c.onnx", "pattern_classifier", UP)
    engine: StrategyEngine = engine_for()
    served = engine.models.active["pattern_classifier"]
    fast = OnnxRunner(tmp_path / "c.onnx", name="fast", window=WINDOW)
    race = RacingRunner(served.runner, fast, timeout_s=5.0)
    served.runner = race
    try:
        for _ in range(3):
            (made,) = asyncio.run(engine.handle([_message()]))
            assert made.degraded is None
        stats = engine.models.stats()
    finally:
        race.close()
    paths = ("onnxruntime", "fast")  # the runners' names
    assert {p: stats[("pattern_classifier", p, "asked")] for p in paths} == dict.fromkeys(
        paths, 3.0
    )
    wins = sum(stats[("pattern_classifier", p, "wins")] for p in paths)
    assert wins == 3.0
    assert stats[("pattern_classifier", "race", "fallbacks")] == 0.0


def test_the_stored_sentiment_of_the_symbol_is_an_input_through_the_realtime_feed(
    sessions: sessionmaker[Session], engine_for: Any
) -> None:
    now = datetime.now(UTC)
    figure = SymbolSentiment(
        symbol="AAPL", as_of=now - timedelta(hours=1), scorer="lexicon", score=-0.8, count=3,
        dispersion=0.1, change=-0.2, first_known_at=now - timedelta(hours=5),
        last_known_at=now - timedelta(hours=1), half_life_h=24, window_h=168,
    )  # fmt: skip
    with unit_of_work(sessions) as session:
        ensure_instruments(session, ["AAPL"])
        store_sentiment(session, [figure])
    feed = SentimentFeed(sessions, None, window_h=168)
    asyncio.run(feed.start())
    asyncio.run(feed.stop())
    engine: StrategyEngine = engine_for(sentiment=feed.lookup)
    (suggestion,) = asyncio.run(engine.handle([_message()]))
    assert suggestion.inputs["sentiment"] == -0.8
    mood, signal = suggestion.contributions["sentiment"], suggestion.contributions["signal"]
    assert mood is not None
    assert mood < 0  # bad news pulls a buy signal down
    assert signal is not None
    assert signal > 0
