"""Approving waiting trades over HTTP: checked again, sent once, refused ones never sent."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import func, select

from models.enums import Role, Side
from models.intents import ManualTrade
from models.ops import AuditEvent
from models.trading import Order
from realtime.runtime import Runtime
from tasks.execution.manual import place_manual_trades
from tests.api_support import Api


def _queue(api: Api, *trades: ManualTrade, source: str) -> list[int]:
    runtime: Runtime = api.app.state.runtime
    outcomes = asyncio.run(
        place_manual_trades(
            runtime.sessions, runtime.settings, trades, source=source, execute=False
        )
    )
    ids = [o.intent_id for o in outcomes]
    assert all(isinstance(i, int) for i in ids)
    return [i for i in ids if i is not None]


def _orders(api: Api) -> int:
    with api.sessions() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def test_a_trader_approves_waiting_trades_and_each_is_sent_once(api: Api) -> None:
    ids = _queue(
        api,
        ManualTrade(symbol="AAPL", side=Side.BUY, qty=Decimal(5)),
        ManualTrade(
            symbol="MSFT",
            side=Side.BUY,
            qty=Decimal(3),
            take_profit=Decimal(200),
            stop_loss=Decimal(100),
        ),
        source="test-1",
    )
    pending = api.get("/api/trades/pending").json()["items"]
    assert sorted(p["id"] for p in pending) == sorted(ids)
    assert (
        api.post("/api/trades/execute", json={"intent_ids": ids}, role=Role.VIEWER).status_code
        == 403
    )
    assert api.post("/api/trades/execute", json={"intent_ids": []}).status_code == 422
    assert api.post("/api/trades/execute", json={"intent_ids": [ids[0], 9999]}).status_code == 404
    assert _orders(api) == 0  # an unknown id stops the whole request before anything is sent
    done = api.post("/api/trades/execute", json={"intent_ids": ids})
    assert done.status_code == 200, done.text
    assert [(o["symbol"], o["status"]) for o in done.json()] == [
        ("AAPL", "filled"),
        ("MSFT", "filled"),
    ]
    assert _orders(api) == 1 + 3  # AAPL's entry; MSFT's entry and its two bracket legs
    again = api.post("/api/trades/execute", json={"intent_ids": ids[:1]})
    assert again.status_code == 409
    assert _orders(api) == 4
    assert api.get("/api/trades/pending").json()["items"] == []
    with api.sessions() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "trade.approved")
        ).all()
        assert sorted(int(e.entity_id) for e in events) == sorted(ids)
        assert {e.payload["after"]["status"] for e in events} == {"filled"}


def test_a_halt_between_asking_and_approving_keeps_the_trade_unsent(api: Api) -> None:
    [intent] = _queue(api, ManualTrade(symbol="AAPL", side=Side.BUY, qty=Decimal(5)), source="t2")
    halted = api.post("/api/trading/halt", json={"reason": "drill"}, role=Role.ADMIN)
    assert halted.status_code == 200, halted.text
    [outcome] = api.post("/api/trades/execute", json={"intent_ids": [intent]}).json()
    assert outcome["status"] == "risk_rejected"
    assert "halted" in outcome["reason"]
    assert _orders(api) == 0
