"""Orders and fills reach the dashboard: the execution stage publishes on Redis, the realtime
process forwards to WebSocket `orders` / `fills` subscribers."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from api.app import create_app
from db.engine import make_engine, make_session_factory
from db.migrate import upgrade
from services.brokers import PaperBroker
from services.bus import RedisStreamsBus
from services.settings import Settings
from tasks.execution.account_run import execute_account
from tests.live_server import serve_in_thread
from tests.test_execution_risk import AS_OF, Case, setup_decision

REDIS_URL = "redis://127.0.0.1:6379/0"


def _first_of_each(ws: Connection, topics: tuple[str, ...], cid: str) -> dict[str, dict[str, Any]]:
    """The first message on each topic for this order. Topics are separate streams, so a fill
    may reach the socket before its order: keep reading until every topic has been seen."""
    found: dict[str, dict[str, Any]] = {}
    while len(found) < len(topics):
        message: dict[str, Any] = json.loads(ws.recv(timeout=10))
        data = message.get("data") or {}
        topic = message["type"]
        if topic in topics and topic not in found and data.get("client_order_id") == cid:
            found[topic] = data
    return found


@pytest.mark.redis
@pytest.mark.usefixtures("redis_up")
def test_an_executed_bracket_shows_up_on_the_orders_and_fills_topics(
    migrated_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    engine = make_engine(migrated_db_url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    case = Case("none")
    decision_id, _ = setup_decision(sessions, case)
    settings = Settings(
        database_url=migrated_db_url,
        realtime_symbols=["AAPL"],
        redis_url=REDIS_URL,
        gc_full_every_s=0,  # see tests/live_server.py
    )

    async def execute() -> str:
        bus = RedisStreamsBus(REDIS_URL)
        broker = PaperBroker(Decimal(100_000), state_path=tmp_path / "acct.json")
        try:
            await execute_account(
                sessions, case.account, broker, [decision_id], as_of=AS_OF, bus=bus
            )
        finally:
            await bus.close()
        (order,) = await broker.list_orders()
        return order.client_order_id

    try:
        with (
            serve_in_thread(create_app(settings)) as url,
            connect(url.replace("http", "ws") + "/ws") as ws,
        ):
            ws.send(json.dumps({"action": "subscribe", "topics": ["orders", "fills"]}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            cid = asyncio.run(execute())
            seen = _first_of_each(ws, ("orders", "fills"), cid)
            order, fill = seen["orders"], seen["fills"]
    finally:
        engine.dispose()
    assert (order["symbol"], order["leg"], order["status"]) == ("AAPL", "entry", "filled")
    assert fill["symbol"] == "AAPL"
    assert Decimal(fill["qty"]) == 100
