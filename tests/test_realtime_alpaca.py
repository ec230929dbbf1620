"""The production market-data path end to end: alpaca-py -> AlpacaSource -> SSE and 1-minute bars.

Alpaca itself is replaced at the network edge by `FakeAlpacaStream`, which the
real alpaca-py client connects to; everything of ours runs as in production.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from httpx_sse import connect_sse
from pydantic import SecretStr
from sqlalchemy import select

from api.app import create_app
from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from models.enums import Timeframe
from models.market import Bar
from services.settings import MarketDataSourceKind, Settings
from tests.fake_alpaca_stream import FakeAlpacaStream
from tests.live_server import serve_in_thread


def test_alpaca_trades_stream_to_dashboards_and_become_minute_bars(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    with FakeAlpacaStream(key="k", secret="s") as fake:
        settings = Settings(
            database_url=migrated_db_url,
            market_data_source=MarketDataSourceKind.ALPACA,
            alpaca_api_key=SecretStr("k"),
            alpaca_secret_key=SecretStr("s"),
            alpaca_stream_url=fake.url,
            realtime_symbols=["AAPL", "MSFT"],
            sse_interval_ms=50,
            gc_full_every_s=0,  # see tests/live_server.py
        )
        app = create_app(settings)
        minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
        with serve_in_thread(app) as url:
            deadline = time.monotonic() + 10
            while fake.subscribed_trades != {"AAPL", "MSFT"}:
                assert time.monotonic() < deadline, "alpaca-py never subscribed"
                time.sleep(0.05)
            with (
                httpx.Client(base_url=url, timeout=10) as client,
                connect_sse(client, "GET", "/api/stream/prices?symbols=AAPL") as source,
            ):
                events = source.iter_sse()
                assert next(events).event == "snapshot"
                for second, price in [(1, 190.25), (30, 191.5), (59, 189.75)]:
                    fake.push_trade("AAPL", price, 100, minute + timedelta(seconds=second))
                fake.push_trade("AAPL", 192.0, 50, minute + timedelta(minutes=1, seconds=1))
                prices: list[float] = []
                while 192.0 not in prices:
                    prices += [row["price"] for row in json.loads(next(events).data)]
            assert app.state.runtime.bars is not None  # a live source: ticks are kept as bars
        # on shutdown both minutes are over by the wall clock, so both are written
    with make_session_factory(engine)() as s:
        bars = s.scalars(select(Bar).where(Bar.symbol == "AAPL")).all()
    engine.dispose()
    bars = sorted(bars, key=lambda b: b.ts)
    assert [(b.timeframe, b.ts) for b in bars] == [
        (Timeframe.M1, minute),
        (Timeframe.M1, minute + timedelta(minutes=1)),
    ]
    first, later = bars
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        Decimal("190.25"),
        Decimal("191.5"),
        Decimal("189.75"),
        Decimal("189.75"),
        Decimal(300),
    )
    assert (later.open, later.close, later.volume) == (Decimal(192), Decimal(192), Decimal(50))
