"""AlpacaSource: the real alpaca-py client against a loopback fake of Alpaca's stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr

from models.errors import AITraderError, ConfigurationError
from models.market_data import Tick
from realtime.sources.alpaca import AlpacaSource, MarketDataAuthError
from realtime.sources.base import TickHandler
from services.settings import Settings
from tests.fake_alpaca_stream import FakeAlpacaStream
from tests.live_server import free_port

KEY, SECRET = "test-key", "test-secret"
T0 = datetime(2026, 1, 5, 14, 30, 0, 123456, tzinfo=UTC)


@pytest.fixture
def alpaca() -> Iterator[FakeAlpacaStream]:
    with FakeAlpacaStream(KEY, SECRET) as server:
        yield server


def _source(server: FakeAlpacaStream, *symbols: str, key: str = KEY) -> AlpacaSource:
    return AlpacaSource(key, SECRET, symbols, url_override=server.url, connect_timeout_s=5)


@contextlib.asynccontextmanager
async def _started(source: AlpacaSource, on_tick: TickHandler) -> AsyncIterator[AlpacaSource]:
    """Start; stop on the way out even when an assertion failed (stop twice is a no-op)."""
    await source.start(on_tick)
    try:
        yield source
    finally:
        await source.stop()


async def _eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll while letting the client run on this loop."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        await asyncio.sleep(0.01)


def _our_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("alpaca")]


def test_trades_of_subscribed_symbols_arrive_as_ticks_with_utc_event_time(
    alpaca: FakeAlpacaStream,
) -> None:
    async def scenario() -> list[Tick]:
        ticks: list[Tick] = []
        async with _started(_source(alpaca, "aapl", "MSFT"), ticks.append) as source:
            assert source.running
            assert alpaca.auth_attempts == 1  # start() returned after the login
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL", "MSFT"})
            new_york = timezone(timedelta(hours=-5))
            assert alpaca.push_trade("AAPL", 187.25, 100, T0) == 1
            later = (T0 + timedelta(seconds=1)).astimezone(new_york)
            assert alpaca.push_trade("MSFT", 410.5, 3, later) == 1
            assert alpaca.push_trade("TSLA", 250.0, 10, T0) == 0  # not subscribed
            await _eventually(lambda: len(ticks) == 2)
        return ticks

    ticks = asyncio.run(scenario())
    assert ticks == [
        Tick("AAPL", 187.25, 100.0, T0),
        Tick("MSFT", 410.5, 3.0, T0 + timedelta(seconds=1)),
    ]
    assert all(t.ts.utcoffset() == timedelta(0) for t in ticks)


def test_a_symbol_added_mid_stream_is_subscribed_and_its_trades_arrive(
    alpaca: FakeAlpacaStream,
) -> None:
    async def scenario() -> None:
        ticks: list[Tick] = []
        async with _started(_source(alpaca, "AAPL"), ticks.append) as source:
            source.add_symbol("nvda")
            assert source.symbols == {"AAPL", "NVDA"}
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL", "NVDA"})
            alpaca.push_trade("NVDA", 140.0, 50, T0)
            await _eventually(lambda: ticks == [Tick("NVDA", 140.0, 50.0, T0)])
        assert alpaca.connections_opened == 1  # subscribed on the live connection

    asyncio.run(scenario())


def test_a_removed_symbol_is_unsubscribed_and_its_trades_stop_at_once(
    alpaca: FakeAlpacaStream,
) -> None:
    async def scenario() -> None:
        ticks: list[Tick] = []
        async with _started(_source(alpaca, "AAPL", "MSFT"), ticks.append) as source:
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL", "MSFT"})
            alpaca.push_trade("MSFT", 410.0, 1, T0)  # on its way when the symbol is removed:
            source.remove_symbol("MSFT")  # dropped locally, whatever the wire does
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL"})
            assert alpaca.push_trade("MSFT", 411.0, 1, T0) == 0
            alpaca.push_trade("AAPL", 187.0, 1, T0)
            await _eventually(lambda: len(ticks) >= 1)
            await asyncio.sleep(0.05)
        assert [t.symbol for t in ticks] == ["AAPL"]

    asyncio.run(scenario())


def test_wrong_credentials_raise_a_typed_error_from_start_without_retrying(
    alpaca: FakeAlpacaStream,
) -> None:
    async def scenario() -> None:
        source = _source(alpaca, "AAPL", key="wrong-key")
        began = time.monotonic()
        with pytest.raises(MarketDataAuthError, match="ALPACA_API_KEY") as raised:
            await asyncio.wait_for(source.start(lambda tick: None), 5)
        assert time.monotonic() - began < 2
        assert isinstance(raised.value, AITraderError)
        assert "auth failed" in str(raised.value)
        assert not source.running
        assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left to retry
        await source.stop()  # a no-op now: start() cleaned up
        await _eventually(lambda: alpaca.open_connections == 0)

    asyncio.run(scenario())
    assert alpaca.auth_failures == 1
    assert _our_threads() == []


def test_a_key_refused_after_a_reconnect_ends_the_stream_and_is_logged(
    alpaca: FakeAlpacaStream, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with _started(_source(alpaca, "AAPL"), lambda tick: None) as source:
            alpaca.accept_credentials("rotated-key", "rotated-secret")
            alpaca.drop_connections()
            await _eventually(lambda: not source.running)
        # and stop() did not raise what was already logged

    with caplog.at_level(logging.ERROR, logger="realtime.sources.alpaca"):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if r.name == "realtime.sources.alpaca"]
    assert [r.getMessage() for r in failures] == ["alpaca.auth_failed"]
    assert "ALPACA_API_KEY" in failures[0].reason  # type: ignore[attr-defined]
    assert alpaca.auth_failures == 1


def test_a_dropped_connection_is_reopened_and_ticks_flow_again(alpaca: FakeAlpacaStream) -> None:
    async def scenario() -> None:
        ticks: list[Tick] = []
        async with _started(_source(alpaca, "AAPL"), ticks.append) as source:
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL"})
            alpaca.push_trade("AAPL", 187.0, 1, T0)
            await _eventually(lambda: len(ticks) == 1)
            assert alpaca.drop_connections() == 1
            # alpaca-py waits 0.5-1 s, reconnects, logs in and re-subscribes by itself.
            await _eventually(lambda: alpaca.connections_opened == 2)
            assert source.running
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL"})
            alpaca.push_trade("AAPL", 188.0, 2, T0 + timedelta(seconds=5))
            await _eventually(lambda: len(ticks) == 2)
        assert ticks[-1] == Tick("AAPL", 188.0, 2.0, T0 + timedelta(seconds=5))

    asyncio.run(scenario())
    assert alpaca.auth_attempts == 2


def test_stop_closes_the_connection_and_leaves_no_task_or_thread(
    alpaca: FakeAlpacaStream,
) -> None:
    async def scenario() -> None:
        async with _started(_source(alpaca, "AAPL"), lambda tick: None) as source:
            source.add_symbol("MSFT")
            source.remove_symbol("AAPL")
            await _eventually(lambda: alpaca.subscribed_trades == {"MSFT"})
            assert _our_threads() == ["alpaca-subscriptions_0"]
        assert not source.running
        assert asyncio.all_tasks() == {asyncio.current_task()}
        await _eventually(lambda: alpaca.open_connections == 0)

    asyncio.run(scenario())
    assert alpaca.disconnects == 1
    assert _our_threads() == []


def test_a_source_started_without_symbols_connects_on_its_first_symbol(
    alpaca: FakeAlpacaStream,
) -> None:
    async def scenario() -> None:
        ticks: list[Tick] = []
        async with _started(_source(alpaca), ticks.append) as source:
            await asyncio.sleep(0.1)
            assert source.running
            assert alpaca.connections_opened == 0
            source.add_symbol("AAPL")
            await _eventually(lambda: alpaca.subscribed_trades == {"AAPL"})
            alpaca.push_trade("AAPL", 187.0, 1, T0)
            await _eventually(lambda: len(ticks) == 1)

    asyncio.run(scenario())


def test_start_returns_after_the_timeout_when_alpaca_is_unreachable_and_keeps_trying(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        url = f"ws://127.0.0.1:{free_port()}/v2/iex"
        source = AlpacaSource(KEY, SECRET, ["AAPL"], url_override=url, connect_timeout_s=0.3)
        began = time.monotonic()
        async with _started(source, lambda tick: None):
            assert time.monotonic() - began < 1
            assert source.running  # alpaca-py retries with backoff
        assert asyncio.all_tasks() == {asyncio.current_task()}

    with caplog.at_level(logging.WARNING, logger="realtime.sources.alpaca"):
        asyncio.run(scenario())
    assert "alpaca.not_logged_in_yet" in caplog.messages


def test_a_cancelled_start_leaves_nothing_running() -> None:
    async def scenario() -> None:
        url = f"ws://127.0.0.1:{free_port()}/v2/iex"
        source = AlpacaSource(KEY, SECRET, ["AAPL"], url_override=url, connect_timeout_s=5)
        starting = asyncio.create_task(source.start(lambda tick: None))
        await asyncio.sleep(0.1)
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        assert not source.running
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(scenario())
    assert _our_threads() == []


@pytest.mark.parametrize(
    ("key", "secret", "missing"),
    [
        (None, None, "ALPACA_API_KEY and ALPACA_SECRET_KEY"),
        ("k", None, "ALPACA_SECRET_KEY"),
        ("", "s", "ALPACA_API_KEY"),
    ],
)
def test_missing_keys_in_settings_are_a_configuration_error_naming_them(
    key: str | None, secret: str | None, missing: str
) -> None:
    settings = Settings(
        alpaca_api_key=None if key is None else SecretStr(key),
        alpaca_secret_key=None if secret is None else SecretStr(secret),
    )
    with pytest.raises(ConfigurationError, match=f"needs {missing}$"):
        AlpacaSource.from_settings(settings, ["AAPL"])


def test_keys_in_settings_build_a_source_for_the_symbols() -> None:
    settings = Settings(alpaca_api_key=SecretStr("k"), alpaca_secret_key=SecretStr("s"))
    source = AlpacaSource.from_settings(settings, [" aapl "], feed="sip")
    assert (source.name, source.feed.value) == ("alpaca", "sip")
    assert source.symbols == {"AAPL"}
    assert not source.running
