"""Signals out of the engine: bus, database, GET /api/signals and WebSocket `trading_signals`."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, func, select, text
from websockets.sync.client import connect

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.signals import ensure_strategy
from models.bus import SIGNALS_GLOBAL, signals_for
from models.enums import Side
from models.errors import ConfigurationError
from models.strategy import Signal, Strategy
from realtime.engine_setup import pattern_setup
from realtime.patterns.config import SignalKind
from realtime.patterns.engine import PatternSignal, datetime_to_ns
from realtime.patterns.sink import SignalSink
from services.bus.memory import InProcessBus
from services.settings import Settings
from tests.live_server import serve_in_thread

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)


@pytest.fixture
def db_url(migrated_db_url: str) -> str:
    return migrated_db_url


def _signal(symbol: str, kind: SignalKind, seconds: int, score: float = 3.5) -> PatternSignal:
    return PatternSignal.of(
        symbol=symbol,
        kind=kind,
        side=Side.BUY,
        score=score,
        price=101.25,
        size=300.0,
        ts_ns=datetime_to_ns(T0 + timedelta(seconds=seconds)),
        features={"vwap": 100.5, "z": float("nan")},
    )


def _count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(Signal)) or 0
    engine.dispose()
    return int(n)


def _sink(engine: Engine) -> tuple[InProcessBus, SignalSink]:
    """A sink on a fresh in-process bus, writing under a new strategy row `p`."""
    bus = InProcessBus()
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        strategy_id = ensure_strategy(session, "p", "pattern", {}, "test").id
    return bus, SignalSink(bus, sessions, strategy_id, "p", flush_interval_s=0.05)


def test_the_sink_publishes_each_signal_on_both_streams_and_writes_them_once(db_url: str) -> None:
    async def scenario() -> tuple[int, int, int, int]:
        bus, sink = _sink(make_engine(db_url))
        await sink.start()
        both = [
            _signal("AAA", SignalKind.ZSCORE_BREAKOUT, 0),
            _signal("AAA", SignalKind.VOLUME_SPIKE, 0),
        ]
        sink.submit([*both, _signal("BBB", SignalKind.HIGH_BREAKOUT, 1)])
        sink.submit(both)  # the same two again (a replay): published again, written once
        for _ in range(100):
            if sink.pending == 0 and sink.published == 5:
                break
            await asyncio.sleep(0.02)
        await sink.stop()
        global_ = await bus.tail(SIGNALS_GLOBAL, last_id="0", block_ms=0)
        aaa = await bus.tail(signals_for("aaa"), last_id="0", block_ms=0)
        assert global_[0].message.data["features"]["z"] is None  # NaN never reaches JSON
        assert global_[0].message.data["strategy"] == "p"
        await bus.close()
        return len(global_), len(aaa), sink.written, sink.submitted

    published, for_aaa, written, submitted = asyncio.run(scenario())
    assert (published, for_aaa, submitted) == (5, 4, 5)
    assert written == 3
    assert _count(db_url) == 3


def test_signals_survive_a_database_that_refuses_writes_for_a_while(db_url: str) -> None:
    engine = make_engine(db_url)

    async def scenario() -> SignalSink:
        bus, sink = _sink(engine)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE signals RENAME TO signals_away"))
        await sink.start()
        sink.submit([_signal("AAA", SignalKind.LOW_BREAKOUT, 0)])
        for _ in range(100):
            if sink.write_failures >= 2:
                break
            await asyncio.sleep(0.02)
        assert sink.pending == 1  # kept for the next flush, not lost
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE signals_away RENAME TO signals"))
        for _ in range(100):
            if sink.pending == 0:
                break
            await asyncio.sleep(0.02)
        await sink.stop()
        await bus.close()
        return sink

    sink = asyncio.run(scenario())
    engine.dispose()
    assert sink.write_failures >= 2
    assert (sink.written, sink.published) == (1, 1)
    assert _count(db_url) == 1


def test_a_bus_that_never_comes_back_loses_the_publication_but_not_the_row(db_url: str) -> None:
    async def scenario() -> SignalSink:
        bus, sink = _sink(make_engine(db_url))
        await bus.close()
        await sink.start()
        sink.submit([_signal("AAA", SignalKind.VWAP_LOSS, 0)])
        await sink.stop()
        return sink

    sink = asyncio.run(scenario())
    assert (sink.publish_failures, sink.published, sink.written) == (1, 0, 1)
    assert sink.publish_dropped == 1  # held until the stop, then lost with the process
    assert _count(db_url) == 1


def test_the_strategy_row_overrides_the_settings_and_bad_params_stop_the_start(
    db_url: str,
) -> None:
    sessions = make_session_factory(make_engine(db_url))
    settings = Settings(database_url=db_url, pattern_params={"zscore_threshold": 2.5})
    config, strategy_id = pattern_setup(settings, sessions)
    assert config.zscore_threshold == 2.5
    with unit_of_work(sessions) as session:
        row = session.get(Strategy, strategy_id)
        assert row is not None
        assert row.params["zscore_threshold"] == 2.5  # created from the settings
        row.params = {**row.params, "zscore_threshold": 4.0, "cooldown_s": 5}
    config, again = pattern_setup(settings, sessions)
    assert (config.zscore_threshold, config.cooldown_s, again) == (4.0, 5, strategy_id)

    with unit_of_work(sessions) as session:
        row = session.get(Strategy, strategy_id)
        assert row is not None
        row.params = {**row.params, "cross_slow": 999}
    with pytest.raises(ConfigurationError, match="'pattern_engine' params"):
        pattern_setup(settings, sessions)
    with pytest.raises(ConfigurationError, match="PATTERN_PARAMS"):
        pattern_setup(Settings(database_url=db_url, pattern_params={"nope": 1}), sessions)
    with unit_of_work(sessions) as session:
        session.add(Strategy(name="sma", kind="sma_cross", params={}))
    with pytest.raises(ConfigurationError, match="not 'pattern'"):
        pattern_setup(Settings(database_url=db_url, pattern_strategy="sma"), sessions)


# --- the realtime process end to end


@pytest.fixture
def server(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        database_url=db_url,
        realtime_symbols=["AAA", "BBB", "CCC"],
        sim_interval_ms=10,
        sse_interval_ms=50,
        signal_flush_ms=50,
        gc_full_every_s=0,  # see tests/live_server.py
        # short windows so the simulated market fires within a second or two
        pattern_params={"breakout_window": 5, "zscore_window": 10, "cooldown_s": 0.5},
    )
    app: FastAPI = create_app(settings)
    with serve_in_thread(app) as url:
        yield url


def _ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws"


def test_a_websocket_client_sees_signals_from_the_simulated_market(server: str) -> None:
    with connect(_ws_url(server)) as ws:
        ws.send(json.dumps({"action": "subscribe", "topics": ["trading_signals"]}))
        assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline:
            msg = json.loads(ws.recv(timeout=20))
            if msg["type"] == "trading_signals":
                seen.append(msg["data"])
    assert len(seen) == 3
    for data in seen:
        assert data["event"] == "signal"
        assert data["symbol"] in {"AAA", "BBB", "CCC"}
        assert data["kind"] in {k.value for k in SignalKind}
        assert data["side"] in {"buy", "sell"}
        assert data["strategy"] == "pattern_engine"
        assert {"vwap", "ema_8", "ema_21"} <= data["features"].keys()


def test_get_signals_lists_the_persisted_signals_with_filters(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        deadline = time.monotonic() + 20
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = client.get("/api/signals", params={"limit": 1000}).json()
            if len({r["symbol"] for r in rows}) >= 2 and len(rows) >= 5:
                break
            time.sleep(0.2)
        assert len(rows) >= 5
        assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)
        first = rows[0]
        assert first["timeframe"] == "tick"
        one = client.get("/api/signals", params={"symbol": first["symbol"].lower()}).json()
        assert one
        assert {r["symbol"] for r in one} == {first["symbol"]}
        kind = client.get("/api/signals", params={"kind": first["kind"], "limit": 2}).json()
        assert 1 <= len(kind) <= 2
        assert {r["kind"] for r in kind} == {first["kind"]}
        later = client.get("/api/signals", params={"since": first["ts"]}).json()
        assert later
        assert all(r["ts"] >= first["ts"] for r in later)
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        assert client.get("/api/signals", params={"since": future}).json() == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 1001},
        {"kind": "astrology"},
        {"since": "yesterday"},
        {"since": "2024-03-04T10:00:00"},  # no offset: ambiguous, refused
        {"symbol": "X" * 40},
        {"symbol": "\x00"},  # Postgres refuses NUL in text: must never reach it
        {"symbol": "A B"},
        {"since": "0001-01-01T00:00:00+01:00"},  # no UTC representation
        {"since": "9999-12-31T23:59:59-05:00"},
    ],
)
def test_bad_signal_queries_get_a_clear_422(server: str, params: dict[str, Any]) -> None:
    response = httpx.get(f"{server}/api/signals", params=params, timeout=10)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_book_endpoint_serves_the_simulated_books_in_the_running_process(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        deadline = time.monotonic() + 10
        response = client.get("/api/book/aaa", params={"levels": 3})
        while response.status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.1)
            response = client.get("/api/book/aaa", params={"levels": 3})
        assert response.status_code == 200
        book = response.json()
        assert book["symbol"] == "AAA"
        assert book["nbbo"]["bid"] < book["nbbo"]["ask"]
        assert all(len(v["bids"]) <= 3 for v in book["venues"])
        assert client.get("/api/book/ZZZZ").status_code == 404
