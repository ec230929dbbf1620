"""Signals after a Redis outage: none written meanwhile is lost to a subscriber, none comes twice.

The outage is a private redis-server that the test stops and restarts (the
`PrivateRedis` of tests/test_bus_redis_outage.py); it restarts empty, as dev
and CI run it. End to end, the realtime process is the real app on the
simulated market, so the signals are the pattern engine's, written by the sink
to the table on SQLite and on Postgres, and each client's feed is checked
against that table: the run of rows from its first signal to its last, in
table order, nothing missing, nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select, text
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries.signals import MAX_LIST, ensure_strategy, insert_signals, signal_row
from models.bus import SIGNALS_GLOBAL, SignalKey, signal_key, signals_for
from models.enums import Side
from models.strategy import Signal, Strategy
from realtime.bus_bridge import signal_backlog
from realtime.patterns.config import SignalKind
from realtime.patterns.engine import PatternSignal, datetime_to_ns
from realtime.patterns.sink import SignalSink
from realtime.price_cache import PriceCache
from realtime.runtime import Runtime
from realtime.ws_hub import Topic, WSHub
from realtime.ws_recent import Backlog, KeyedMessage
from services.bus import RedisStreamsBus
from services.settings import Settings
from tests.live_server import serve_in_thread
from tests.private_redis import PrivateRedis

T0 = datetime(2024, 3, 4, 15, 0, tzinfo=UTC)
WAIT_S = 60  # a deadline for things to happen, not a claim about how fast they do


@pytest.fixture
def db_engine_fresh(migrated_db_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


# --- the sink alone: held through the outage, published in order after it ----------


def _signal(symbol: str, seconds: int) -> PatternSignal:
    return PatternSignal.of(
        symbol=symbol,
        kind=SignalKind.ZSCORE_BREAKOUT,
        side=Side.BUY,
        score=3.5,
        price=101.25,
        size=300.0,
        ts_ns=datetime_to_ns(T0 + timedelta(seconds=seconds)),
        features={"vwap": 100.5},
    )


def test_the_sink_holds_signals_through_an_outage_and_publishes_them_in_order_after_it(
    redis_server: PrivateRedis, db_engine_fresh: Engine
) -> None:
    async def scenario() -> None:
        bus = RedisStreamsBus(
            redis_server.url, connect_timeout_s=0.5, command_timeout_s=1.0, backoff_max_s=0.2
        )
        sessions = make_session_factory(db_engine_fresh)
        with unit_of_work(sessions) as session:
            strategy_id = ensure_strategy(session, "p", "pattern", {}, "test").id
        sink = SignalSink(bus, sessions, strategy_id, "p", flush_interval_s=0.05, retry_max_s=0.2)
        await sink.start()
        try:
            sink.submit([_signal("AAA", 0)])
            await _eventually(lambda: sink.published == 1)

            redis_server.stop()
            held = [_signal("AAA" if n % 2 else "BBB", n) for n in range(1, 8)]
            sink.submit(held)
            await _eventually(lambda: sink.publish_failures > 0 and sink.written == 8)
            assert sink.unpublished == 7  # every one held, none dropped
            assert sink.published == 1

            redis_server.start()
            await _eventually(lambda: sink.unpublished == 0)
            after = await bus.tail(SIGNALS_GLOBAL, last_id="0", block_ms=0)
            bbb = await bus.tail(signals_for("BBB"), last_id="0", block_ms=0)
        finally:
            await sink.stop()
            await bus.close()
        # Redis came back empty: the stream holds exactly what was published after it.
        assert [d.message.ts for d in after] == [s.ts for s in held]
        assert [d.message.data["symbol"] for d in bbb] == ["BBB"] * 3
        assert (sink.published, sink.republished, sink.publish_dropped) == (8, 7, 0)

    asyncio.run(scenario())


def test_past_its_bound_the_sink_drops_the_oldest_held_signals_and_counts_them(
    redis_server: PrivateRedis, db_engine_fresh: Engine
) -> None:
    async def scenario() -> tuple[SignalSink, list[datetime]]:
        bus = RedisStreamsBus(redis_server.url, connect_timeout_s=0.5, command_timeout_s=1.0)
        sessions = make_session_factory(db_engine_fresh)
        with unit_of_work(sessions) as session:
            strategy_id = ensure_strategy(session, "p", "pattern", {}, "test").id
        sink = SignalSink(bus, sessions, strategy_id, "p", flush_interval_s=0.05, max_unpublished=3)
        redis_server.stop()
        await sink.start()
        sink.submit([_signal("AAA", n) for n in range(5)])
        await _eventually(lambda: sink.written == 5)  # every row is kept all the same
        redis_server.start()
        await _eventually(lambda: sink.unpublished == 0)
        await sink.stop()
        published = await bus.tail(SIGNALS_GLOBAL, last_id="0", block_ms=0)
        await bus.close()
        return sink, [d.message.ts for d in published]

    sink, published = asyncio.run(scenario())
    assert published == [T0 + timedelta(seconds=n) for n in (2, 3, 4)]
    assert (sink.publish_dropped, sink.republished) == (2, 3)


# --- the backlog: what the table gives a subscriber catching up ---------------------


def test_a_backlog_is_the_newest_thousand_oldest_first_and_says_older_ones_were_left_out(
    db_engine_fresh: Engine,
) -> None:
    sessions = make_session_factory(db_engine_fresh)
    with unit_of_work(sessions) as session:
        strategy_id = ensure_strategy(session, "p", "pattern", {}, "test").id
        rows = [
            signal_row(strategy_id, s.symbol, s.kind.value, s.side, s.score, s.ts, s.as_message())
            for s in (_signal("AAA", n) for n in range(MAX_LIST + 5))
        ]
        rows.append(signal_row(strategy_id, "BBB", "k", Side.SELL, 1.0, _at(3), {"ts": "x"}))
        insert_signals(session, rows)

    since = _at(2)  # inclusive: 2 and later
    cut = signal_backlog(sessions, since, frozenset({"AAA"}))
    assert cut.truncated
    assert [m.ts for m in cut.messages] == [_at(n) for n in range(5, MAX_LIST + 5)]
    assert cut.since == _at(5)  # the hub adds nothing older than what was sent
    first = cut.messages[0]
    assert first.key == ("p", "AAA", "zscore_breakout", _at(5))
    assert first.data["event"] == "signal"
    assert signal_key(first.data) == first.key  # the live message's identity, from the row

    whole = signal_backlog(sessions, _at(MAX_LIST), None)
    assert not whole.truncated
    assert whole.since == _at(MAX_LIST)
    assert [m.symbol for m in whole.messages] == ["AAA"] * 5


# --- the hub: each key once, a replay joins the live feed without a seam ------------


def _keyed(n: int, symbol: str = "AAA") -> KeyedMessage:
    return KeyedMessage(("p", symbol, "k", T0 + timedelta(seconds=n)), {"n": n}, symbol, _at(n))


def _at(n: int) -> datetime:
    return T0 + timedelta(seconds=n)


def _publish(hub: WSHub, n: int, symbol: str = "AAA") -> int:
    message = _keyed(n, symbol)
    return hub.publish(
        Topic.TRADING_SIGNALS, message.data, symbol=symbol, ts=message.ts, key=message.key
    )


def _drain(queue: asyncio.Queue[str]) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        out.append(json.loads(queue.get_nowait()))
    return out


def test_a_signal_that_reaches_the_hub_twice_goes_to_each_client_once() -> None:
    async def scenario() -> None:
        hub = WSHub(PriceCache())
        client = hub.connect()
        hub.subscribe(client, [Topic.TRADING_SIGNALS], None)
        assert _publish(hub, 1) == 1
        assert _publish(hub, 1) == 0  # a retried publication that had landed
        assert _publish(hub, 2) == 1
        assert [m["data"]["n"] for m in _drain(client.queue)] == [1, 2]
        assert hub.duplicates == 1

    asyncio.run(scenario())


def test_a_replay_sends_the_stored_then_the_unstored_then_live_each_once() -> None:
    async def scenario() -> None:
        hub = WSHub(PriceCache(), queue_size=4)
        client = hub.connect()
        received: list[dict[str, Any]] = []

        async def write() -> None:  # what the socket's writer does
            while True:
                received.append(json.loads(await client.next()))

        stored = [*range(-40, -2), 1, 2]  # far more than the queue holds
        _publish(hub, -50)  # before `since`: not replayed
        for n in (1, 2, 3):
            _publish(hub, n)  # published before the catch-up; 3 is not stored yet

        async def load() -> Backlog:
            _publish(hub, 4, "BBB")  # published while the table is read, another symbol
            _publish(hub, 5)  # published while the table is read
            return Backlog([_keyed(n) for n in stored], _at(-40), truncated=False)

        writer = asyncio.create_task(write())
        sent = await hub.replay(client, Topic.TRADING_SIGNALS, frozenset({"AAA"}), load)
        _publish(hub, 6)
        _publish(hub, 5)  # a duplicate of one already sent
        await _eventually(lambda: len(received) == sent + 2)
        writer.cancel()

        signals = [m["data"]["n"] for m in received if m["type"] == "trading_signals"]
        assert signals == [*stored, 3, 5, 6]
        caught_up = received[-2]
        assert caught_up == {
            "type": "caught_up",
            "ts": caught_up["ts"],
            "data": {
                "topic": "trading_signals",
                "since": _at(-40).isoformat(),
                "replayed": len(stored) + 2,
                "truncated": False,
            },
        }
        assert client.dropped == 0  # 40 stored through a queue of 4: paced, not dropped
        assert hub.duplicates == 1

    asyncio.run(scenario())


def test_a_stored_signal_that_is_published_after_its_replay_is_not_sent_again() -> None:
    async def scenario() -> None:
        hub = WSHub(PriceCache())
        client = hub.connect()

        async def load() -> Backlog:  # held back by an outage: stored, not yet published
            return Backlog([_keyed(1), _keyed(2)], _at(0), truncated=False)

        await hub.replay(client, Topic.TRADING_SIGNALS, None, load)
        for n in (1, 2, 3):  # the bus is back: the held ones arrive, then a new one
            _publish(hub, n)
        kinds = [(m["type"], m["data"].get("n")) for m in _drain(client.queue)]
        assert kinds == [
            ("trading_signals", 1),
            ("trading_signals", 2),
            ("caught_up", None),
            ("trading_signals", 3),
        ]

    asyncio.run(scenario())


# --- end to end: the realtime process on the simulated market, Redis going away -----


@dataclass
class Outage:
    url: str
    app: FastAPI
    redis: PrivateRedis
    db: Engine

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def stored(self) -> list[SignalKey]:
        """Every signal in the table, in the order written (the engine's order)."""
        stmt = (
            select(Strategy.name, Signal.symbol, Signal.kind, Signal.ts)
            .join(Strategy, Strategy.id == Signal.strategy_id)
            .order_by(Signal.id)
        )
        with self.db.connect() as conn:
            return [(name, symbol, kind, ts) for name, symbol, kind, ts in conn.execute(stmt)]

    def outage(self) -> tuple[list[SignalKey], list[SignalKey]]:
        """Stop Redis until signals have been held and written, then restart it.

        Returns the rows before the outage and those written during it.
        """
        sink = self.runtime.signals
        assert sink is not None
        before = self.stored()
        self.redis.stop()
        held = sink.republished + 3
        _until(lambda: sink.publish_failures > 0 and sink.unpublished >= 3)
        _until(lambda: len(self.stored()) >= len(before) + 3)
        during = self.stored()[len(before) :]
        self.redis.start()
        _until(lambda: sink.republished >= held)
        return before, during


@pytest.fixture
def outage(
    redis_server: PrivateRedis,
    db_engine_fresh: Engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Outage]:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        database_url=db_engine_fresh.url.render_as_string(hide_password=False),
        redis_url=redis_server.url,
        realtime_symbols=["AAA", "BBB", "CCC"],
        sim_interval_ms=10,
        sse_interval_ms=50,
        signal_flush_ms=50,
        gc_full_every_s=0,  # see tests/live_server.py
        # short windows so the simulated market fires every second or so
        pattern_params={"breakout_window": 5, "zscore_window": 10, "cooldown_s": 0.5},
    )
    app = create_app(settings)
    with serve_in_thread(app) as url:
        yield Outage(url, app, redis_server, db_engine_fresh)


@dataclass
class Feed:
    """One WebSocket client: its trading_signals as identities, and every other message."""

    ws: Connection
    signals: list[SignalKey] = field(default_factory=list)
    others: list[dict[str, Any]] = field(default_factory=list)

    def send(self, command: dict[str, Any]) -> None:
        self.ws.send(json.dumps(command))

    def read_until(self, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            assert time.monotonic() < deadline, f"gave up; got {self.others[-3:]}"
            try:
                message = json.loads(self.ws.recv(timeout=0.2))
            except TimeoutError:
                continue
            if message["type"] == "trading_signals":
                key = signal_key(message["data"])
                assert key is not None, message
                self.signals.append(key)
            else:
                self.others.append(message)

    def next_other(self) -> dict[str, Any]:
        count = len(self.others)
        self.read_until(lambda: len(self.others) > count)
        return self.others[-1]


@contextmanager
def _feed(url: str) -> Iterator[Feed]:
    # The test reads at its own pace: buffer everything meanwhile, and send no keepalive
    # pings, whose answers would wait in that buffer and time the connection out.
    with connect(url.replace("http://", "ws://") + "/ws", ping_interval=None, max_queue=None) as ws:
        yield Feed(ws)


def _run_of(stored: list[SignalKey], feed: list[SignalKey]) -> list[SignalKey]:
    """The rows from the feed's first signal on, as many as the feed has."""
    assert feed, "the feed got no signal"
    start = stored.index(feed[0])
    return stored[start : start + len(feed)]


def test_a_subscriber_connected_through_an_outage_gets_every_signal_written_meanwhile_once(
    outage: Outage,
) -> None:
    with _feed(outage.url) as feed:
        feed.send({"action": "subscribe", "topics": ["trading_signals"]})
        assert feed.next_other()["type"] == "subscribed"
        feed.read_until(lambda: len(feed.signals) >= 2)

        _, during = outage.outage()

        feed.read_until(lambda: set(during) <= set(feed.signals) and feed.signals[-1] not in during)
        _until(lambda: feed.signals[-1] in outage.stored())  # written too, not only published
        assert feed.signals == _run_of(outage.stored(), feed.signals)  # once each, in order

    sink = outage.runtime.signals
    assert sink is not None
    # At least the signals held during the outage (`outage()` waits for 3). Not every row
    # written meanwhile: one published just before Redis stopped is written just after.
    assert len(during) > 0
    assert sink.republished >= 3
    assert sink.publish_dropped == 0
    metrics = httpx.get(f"{outage.url}/metrics", timeout=10).text
    assert f'aitrader_signals_total{{event="republished"}} {float(sink.republished)}\n' in metrics
    assert "signals_unpublished" in outage.runtime.status()  # system_status shows a backlog


def test_subscribers_catching_up_with_since_get_the_stored_then_the_live_without_duplicates(
    outage: Outage,
) -> None:
    sink = outage.runtime.signals
    assert sink is not None
    _until(lambda: len(outage.stored()) >= 3)
    since = outage.stored()[1][3]  # inclusive, as GET /api/signals?since=
    _, during = outage.outage()

    with _feed(outage.url) as feed:
        feed.send(
            {"action": "subscribe", "topics": ["trading_signals"], "since": since.isoformat()}
        )
        assert feed.next_other()["data"]["since"] == since.isoformat()
        caught_up = feed.next_other()
        assert caught_up["type"] == "caught_up"
        replayed = list(feed.signals)
        assert len(replayed) == caught_up["data"]["replayed"]
        assert caught_up["data"]["truncated"] is False
        feed.read_until(lambda: len(feed.signals) >= len(replayed) + 3)  # live ones now
        _until(lambda: feed.signals[-1] in outage.stored())

        stored = outage.stored()
        assert feed.signals[0] == next(s for s in stored if s[3] >= since)
        assert set(during) <= set(replayed)
        assert feed.signals == _run_of(stored, feed.signals)  # once each, in order, no gap
        params: dict[str, str | int] = {"since": since.isoformat(), "limit": 1000}
        rest = httpx.get(f"{outage.url}/api/signals", params=params, timeout=10).json()
        listed = {(r["symbol"], r["kind"], datetime.fromisoformat(r["ts"])) for r in rest}
        assert {(s, k, t) for _, s, k, t in replayed} <= listed  # the same `since`, the same rows


def test_a_subscriber_catching_up_during_the_outage_gets_each_signal_once_after_it(
    outage: Outage,
) -> None:
    sink = outage.runtime.signals
    assert sink is not None
    _until(lambda: len(outage.stored()) >= 1)
    since = outage.stored()[0][3]
    outage.redis.stop()
    _until(lambda: sink.publish_failures > 0 and sink.unpublished >= 3)
    _until(lambda: sink.pending == 0)  # the held ones are in the table: the replay has them

    with _feed(outage.url) as feed:
        feed.send(
            {"action": "subscribe", "topics": ["trading_signals"], "since": since.isoformat()}
        )
        feed.read_until(lambda: any(m["type"] == "caught_up" for m in feed.others))
        replayed = len(feed.signals)
        held = sink.unpublished
        outage.redis.start()  # now the sink publishes the held ones, already replayed
        _until(lambda: sink.republished >= held)
        feed.read_until(lambda: len(feed.signals) >= replayed + 3)
        _until(lambda: feed.signals[-1] in outage.stored())
        assert feed.signals == _run_of(outage.stored(), feed.signals)
        assert outage.runtime.ws_hub.replayed >= replayed


def test_a_bad_since_gets_a_clear_error_and_the_connection_goes_on(
    db_engine_fresh: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(
        database_url=db_engine_fresh.url.render_as_string(hide_password=False),
        realtime_symbols=["AAA"],
        pattern_engine=False,
        gc_full_every_s=0,
    )
    bad: list[tuple[dict[str, Any], str]] = [
        ({"since": "yesterday"}, "since"),
        ({"since": "2024-03-04T10:00:00"}, "since"),  # no offset: ambiguous, refused
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),  # no UTC representation
        ({"since": None, "topics": ["orders"]}, ""),  # None is "not given": fine
        ({"topics": ["orders"]}, "trading_signals only"),
        ({"action": "unsubscribe"}, "subscribe only"),
    ]
    with serve_in_thread(create_app(settings)) as url, _feed(url) as feed:
        for extra, expected in bad:
            command = {
                "action": "subscribe",
                "topics": ["trading_signals"],
                "since": "2024-03-04T10:00:00Z",
                **extra,
            }
            feed.send(command)
            reply = feed.next_other()
            if not expected:
                assert reply["type"] == "subscribed", reply
                continue
            assert reply["type"] == "error", (command, reply)
            assert expected in json.dumps(reply["data"]), reply
        feed.send({"action": "ping"})
        assert feed.next_other()["type"] == "pong"
        feed.send(_catch_up("2024-03-04Z"))
        assert feed.next_other()["type"] == "error"  # a date is not an instant
        feed.send(_catch_up("2024-03-04T10:00:00Z"))
        assert feed.next_other()["type"] == "subscribed"
        caught_up = feed.next_other()
        assert caught_up["type"] == "caught_up"
        assert caught_up["data"]["replayed"] == 0
        assert caught_up["data"]["since"] == "2024-03-04T10:00:00+00:00"

        with db_engine_fresh.begin() as conn:  # the table cannot be read for a while
            conn.execute(text("ALTER TABLE signals RENAME TO signals_away"))
        try:
            feed.send(_catch_up("2024-03-04T10:00:00Z"))
            assert feed.next_other()["type"] == "subscribed"
            failed = feed.next_other()
            assert failed["type"] == "error"
            assert failed["data"]["topic"] == "trading_signals"
            assert "subscribe again" in failed["data"]["detail"]
            feed.send({"action": "ping"})
            assert feed.next_other()["type"] == "pong"
        finally:
            with db_engine_fresh.begin() as conn:
                conn.execute(text("ALTER TABLE signals_away RENAME TO signals"))


# --- helpers -----------------------------------------------------------------------


def _catch_up(since: str) -> dict[str, Any]:
    return {"action": "subscribe", "topics": ["trading_signals"], "since": since}


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


async def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "gave up waiting"
        await asyncio.sleep(0.02)
