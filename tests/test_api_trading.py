"""The trading reads (orders, fills, trades, pending intents, positions), the accounts
(configured, and as the broker reports them) and the kill switch, over HTTP.

Ledger rows are seeded with tests/trading_factories.py. Apps that mark
positions stream only XOM from the simulator, so a test decides which
symbols have a live price (it feeds the price cache itself) and which are
marked at their last stored close.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import unit_of_work
from models.accounts import AccountConfig
from models.base import utcnow
from models.broker import OrderRequest
from models.enums import BrokerKind, IntentStatus, OrderLeg, OrderStatus, OrderType, Role, Side
from models.market_data import Tick
from models.ops import AuditEvent
from models.trading import TradingHalt
from services.brokers.factory import make_broker
from tests.api_support import Api, api_settings, running_api
from tests.fake_alpaca_rest import FakeAlpacaRest, fake_alpaca_rest
from tests.trading_factories import (
    at,
    make_account,
    make_decision,
    make_fill,
    make_intent,
    make_order,
    make_position,
    make_snapshot,
    make_trade,
)

ALPACA_KEYS: dict[str, Any] = {"api_key": "fake-key-id", "secret_key": "fake-secret-value"}


@pytest.fixture
def desk(api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Api]:
    """The app with two paper accounts, streaming only XOM."""
    monkeypatch.chdir(tmp_path)
    accounts = [AccountConfig(name="paper"), AccountConfig(name="other")]
    with running_api(
        api_settings(
            api_db_url,
            accounts=accounts,
            realtime_symbols=["XOM"],
            paper_state_dir=tmp_path / "paper",
        )
    ) as client:
        yield client


def _ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _seed_ledger(api: Api) -> dict[str, int]:
    """Two accounts' orders (a bracket, a refusal), fills, round trips and intents."""
    with unit_of_work(api.sessions) as s:
        paper, other, gone = (make_account(s, n) for n in ("paper", "other", "gone"))
        decision = make_decision(s, "AAPL")
        sent = make_intent(s, paper, status=IntentStatus.SUBMITTED, decision_id=decision)
        entry = make_order(s, paper, intent_id=sent.id, created_at=at(6))
        legs = {
            leg: make_order(
                s,
                paper,
                side=Side.SELL,
                status=OrderStatus.ACCEPTED,
                intent_id=sent.id,
                parent_id=entry.id,
                leg=leg,
                order_type=OrderType.LIMIT,
                limit_price=Decimal("330"),
                created_at=at(7, hour),
            )
            for leg, hour in ((OrderLeg.TAKE_PROFIT, 16), (OrderLeg.STOP_LOSS, 17))
        }
        refused = make_order(
            s,
            paper,
            symbol="MSFT",
            status=OrderStatus.REJECTED,
            reject_reason="insufficient buying power",
            created_at=at(8),
        )
        sold = make_order(s, other, symbol="MSFT", side=Side.SELL, created_at=at(9, 10))
        working = make_order(s, other, status=OrderStatus.NEW, created_at=at(9, 15))
        make_fill(s, entry, price="300.5", ts=at(6, 16))
        make_fill(s, sold, qty=5, price="160", ts=at(9, 11))
        closed = make_trade(s, paper, exit_price="320", entry_at=at(6), exit_at=at(8))
        still = make_trade(s, paper, entry_at=at(9))
        short = make_trade(s, other, symbol="MSFT", entry_at=at(7))
        chat = make_intent(s, paper, key="chat-17-0-paper", created_at=at(9))
        council = make_intent(
            s, other, symbol="MSFT", decision_id=make_decision(s, "MSFT"), created_at=at(8)
        )
        old = make_order(s, gone, created_at=at(3))
        return {
            "old": old.id,
            "decision": decision,
            "entry": entry.id,
            "tp": legs[OrderLeg.TAKE_PROFIT].id,
            "sl": legs[OrderLeg.STOP_LOSS].id,
            "refused": refused.id,
            "sold": sold.id,
            "working": working.id,
            "closed": closed.id,
            "still": still.id,
            "short": short.id,
            "chat": chat.id,
            "council": council.id,
        }


def test_orders_are_listed_newest_first_with_legs_intent_decision_and_refusals(api: Api) -> None:
    ids = _seed_ledger(api)
    everything = api.get("/api/orders")
    paper = [ids[k] for k in ("refused", "sl", "tp", "entry")]
    assert _ids(everything) == [ids["working"], ids["sold"], *paper, ids["old"]]
    by_id = {o["id"]: o for o in everything.json()["items"]}
    tp = by_id[ids["tp"]]
    assert tp["parent_id"] == ids["entry"]
    assert tp["leg"] == "take_profit"
    assert tp["decision_id"] == ids["decision"]
    assert tp["intent_id"] == by_id[ids["entry"]]["intent_id"]
    assert Decimal(tp["limit_price"]) == Decimal("330")
    assert by_id[ids["refused"]]["reject_reason"] == "insufficient buying power"
    assert by_id[ids["refused"]]["decision_id"] is None
    assert by_id[ids["working"]]["account"] == "other"

    assert _ids(api.get("/api/orders?account=paper&symbol=aapl")) == paper[1:]
    assert _ids(api.get("/api/orders?status=rejected")) == [ids["refused"]]
    assert _ids(api.get("/api/orders?status=new&status=accepted")) == [
        ids["working"],
        ids["sl"],
        ids["tp"],
    ]
    first = api.get("/api/orders?account=paper&limit=2").json()
    assert [o["id"] for o in first["items"]] == paper[:2]
    assert first["next_offset"] == 2
    last = api.get("/api/orders?account=paper&limit=2&offset=2").json()
    assert [o["id"] for o in last["items"]] == paper[2:]
    assert last["next_offset"] is None
    window = "since=2020-01-07T00:00:00Z&until=2020-01-09T00:00:00Z"
    assert _ids(api.get(f"/api/orders?{window}")) == paper[:3]


def test_fills_and_round_trips_carry_their_account_and_filter_by_open(api: Api) -> None:
    ids = _seed_ledger(api)
    fills = api.get("/api/fills").json()["items"]
    assert [(f["order_id"], f["account"], f["symbol"], f["side"]) for f in fills] == [
        (ids["sold"], "other", "MSFT", "sell"),
        (ids["entry"], "paper", "AAPL", "buy"),
    ]
    assert Decimal(fills[0]["qty"]) == 5
    assert Decimal(fills[1]["price"]) == Decimal("300.5")
    assert [f["order_id"] for f in api.get("/api/fills?account=paper").json()["items"]] == [
        ids["entry"]
    ]
    assert api.get("/api/fills?symbol=NVDA").json()["items"] == []

    assert _ids(api.get("/api/trades")) == [ids["still"], ids["closed"], ids["short"]]
    assert _ids(api.get("/api/trades?open=true")) == [ids["still"], ids["short"]]
    [closed] = api.get("/api/trades?open=false").json()["items"]
    assert closed["open"] is False
    assert Decimal(closed["realized_pnl"]) == 200
    assert _ids(api.get("/api/trades?account=other")) == [ids["short"]]
    assert _ids(api.get("/api/trades?since=2020-01-08T00:00:00Z")) == [ids["still"], ids["closed"]]


def test_pending_trades_are_the_intents_waiting_with_their_checks_and_origin(api: Api) -> None:
    ids = _seed_ledger(api)
    pending = api.get("/api/trades/pending").json()["items"]
    assert [i["id"] for i in pending] == [ids["chat"], ids["council"]]
    chat, council = pending
    assert chat["status"] == "pending_approval"
    assert chat["idempotency_key"] == "chat-17-0-paper"
    assert chat["decision_id"] is None
    assert chat["risk_checks"] == {"max_order_notional": {"passed": True, "detail": "ok"}}
    assert council["decision_id"] is not None
    assert council["account"] == "other"
    assert _ids(api.get("/api/trades/pending?account=other")) == [ids["council"]]


@pytest.mark.parametrize(
    "path",
    ["/api/orders", "/api/fills", "/api/trades", "/api/trades/pending", "/api/positions"],
)
def test_trading_reads_refuse_an_unknown_account_and_bad_filters(api: Api, path: str) -> None:
    _seed_ledger(api)
    missing = api.get(f"{path}?account=nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert "nope" in missing.json()["detail"]
    assert api.get(f"{path}?account=gone").status_code == 200  # books, no longer configured
    assert api.get(f"{path}?account=").status_code == 422
    if path != "/api/positions":
        bad = api.get(f"{path}?symbol=not a symbol!")
        assert bad.status_code == 422
        assert "query.symbol" in [e["field"] for e in bad.json()["errors"]]
        window = api.get(f"{path}?since=2020-01-02T00:00:00Z&until=2020-01-01T00:00:00Z")
        assert [e["field"] for e in window.json()["errors"]] == ["query.until"]
        assert api.get(f"{path}?limit=0").status_code == 422


def test_orders_refuse_an_unknown_status(api: Api) -> None:
    response = api.get("/api/orders?status=lost")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.status.0"


def test_positions_are_marked_at_the_live_price_else_the_last_close(desk: Api) -> None:
    with unit_of_work(desk.sessions) as s:
        paper, other = make_account(s, "paper"), make_account(s, "other")
        make_position(s, paper, symbol="AAPL", qty=10, avg_price="300", realized_pnl="5")
        make_position(s, paper, symbol="MSFT", qty=-5, avg_price="150")
        make_position(s, other, symbol="AAPL", qty=0, avg_price="290")  # flat: not listed
    desk.app.state.runtime.cache.update(Tick("MSFT", 160.0, 1.0, utcnow()))

    response = desk.get("/api/positions")
    assert response.status_code == 200
    aapl, msft = response.json()
    assert (aapl["account"], aapl["symbol"], aapl["price_source"]) == ("paper", "AAPL", "close")
    assert Decimal(aapl["price"]) == Decimal("310.33")  # the sample's last close, 2020-01-10
    assert aapl["price_ts"].startswith("2020-01-11T00:00:00")  # known once the day ended
    assert Decimal(aapl["market_value"]) == Decimal("3103.3")
    assert Decimal(aapl["unrealized_pnl"]) == Decimal("103.3")
    assert Decimal(aapl["realized_pnl"]) == 5
    assert msft["price_source"] == "live"
    assert Decimal(msft["market_value"]) == -800
    assert Decimal(msft["unrealized_pnl"]) == -50  # short, and the price rose
    assert desk.get("/api/positions?account=other").json() == []


def test_accounts_show_configuration_snapshot_and_halt_but_never_keys(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    accounts = [
        AccountConfig(name="paper", allocation=Decimal("0.5")),
        AccountConfig(name="alp", broker=BrokerKind.ALPACA, **ALPACA_KEYS),
    ]
    with running_api(api_settings(api_db_url, accounts=accounts)) as api:
        with unit_of_work(api.sessions) as s:
            paper = make_account(s, "paper")
            make_snapshot(s, paper, ts=at(6), cash="100000")
            make_snapshot(s, paper, ts=at(8), cash="96000", positions_value="3100")
            s.add(TradingHalt(account="alp", halted=True, reason="keys rotated", actor="ops"))
        response = api.get("/api/accounts")

    assert response.status_code == 200
    assert "fake-key-id" not in response.text
    assert "fake-secret-value" not in response.text
    paper_out, alp_out = response.json()
    assert (paper_out["name"], paper_out["broker"], paper_out["live"]) == ("paper", "paper", False)
    assert Decimal(paper_out["allocation"]) == Decimal("0.5")
    assert Decimal(paper_out["limits"]["max_position_pct"]) == Decimal("0.25")
    assert paper_out["snapshot"]["ts"].startswith("2020-01-08")
    assert Decimal(paper_out["snapshot"]["cash"]) == 96000
    assert Decimal(paper_out["snapshot"]["equity"]) == 99100
    assert paper_out["trading"] == {"account": "paper", "halted": False, "halt": None}
    assert alp_out["snapshot"] is None
    assert alp_out["trading"]["halted"] is True
    assert alp_out["trading"]["halt"]["reason"] == "keys rotated"
    assert alp_out["trading"]["halt"]["actor"] == "ops"


def test_broker_proxy_reads_a_paper_account_from_its_state(desk: Api, tmp_path: Path) -> None:
    settings = desk.app.state.runtime.settings
    broker = make_broker(settings.account("paper"), settings)
    request = OrderRequest(
        client_order_id="proxy-1",
        symbol="AAPL",
        side=Side.BUY,
        qty=Decimal(10),
        type=OrderType.LIMIT,
        limit_price=Decimal("250"),
    )
    asyncio.run(broker.submit(request))

    response = desk.get("/api/accounts/paper")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["broker"], body["live"]) == ("paper", "paper", False)
    assert Decimal(body["cash"]) == 100_000
    assert Decimal(body["equity"]) == 100_000
    assert Decimal(body["buying_power"]) == 100_000 - 2_500  # reserved by the working order
    assert body["positions"] == []
    [order] = body["open_orders"]
    assert (order["client_order_id"], order["symbol"], order["status"]) == (
        "proxy-1",
        "AAPL",
        "accepted",
    )
    missing = desk.get("/api/accounts/nope")
    assert missing.status_code == 404
    assert not (tmp_path / "paper" / "nope.json").exists()


def _alpaca_accounts(server: FakeAlpacaRest) -> list[AccountConfig]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    return [
        AccountConfig(
            name="alp", broker=BrokerKind.ALPACA, base_url=server.base_url, **ALPACA_KEYS
        ),
        AccountConfig(
            name="gone",
            broker=BrokerKind.ALPACA,
            base_url=f"http://127.0.0.1:{closed_port}",
            timeout_s=0.5,
            **ALPACA_KEYS,
        ),
    ]


def test_broker_proxy_asks_alpaca_and_answers_503_when_it_cannot(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with fake_alpaca_rest(cash=50_000) as server:
        accounts = _alpaca_accounts(server)
        broker = make_broker(accounts[0], api_settings(api_db_url))
        bought = asyncio.run(
            broker.submit(
                OrderRequest(client_order_id="alp-1", symbol="AAPL", side=Side.BUY, qty=Decimal(10))
            )
        )
        server.fill(bought.order_id, "300")
        asyncio.run(
            broker.submit(
                OrderRequest(
                    client_order_id="alp-2",
                    symbol="MSFT",
                    side=Side.BUY,
                    qty=Decimal(1),
                    type=OrderType.LIMIT,
                    limit_price=Decimal("100"),
                    take_profit=Decimal("120"),
                    stop_loss=Decimal("90"),
                )
            )
        )
        with running_api(api_settings(api_db_url, accounts=accounts)) as api:
            response = api.get("/api/accounts/alp")
            gone = api.get("/api/accounts/gone")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["broker"] == "alpaca"
    assert Decimal(body["cash"]) == 50_000 - 3_000
    assert [(p["symbol"], Decimal(p["qty"])) for p in body["positions"]] == [("AAPL", Decimal(10))]
    [working] = body["open_orders"]
    assert working["client_order_id"] == "alp-2"
    assert sorted(leg["leg"] for leg in working["legs"]) == ["stop_loss", "take_profit"]
    assert gone.status_code == 503
    assert gone.headers["content-type"] == "application/problem+json"
    assert "BrokerUnavailableError" in gone.json()["detail"]


def _audit_count(api: Api) -> int:
    with api.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent)) or 0


def _halt_count(api: Api) -> int:
    with api.sessions() as s:
        return s.scalar(select(func.count()).select_from(TradingHalt)) or 0


def test_an_admin_halts_and_resumes_trading_and_each_flip_is_audited(desk: Api) -> None:
    assert desk.get("/api/trading/status").json() == {
        "all_accounts": None,
        "accounts": [
            {"account": "paper", "halted": False, "halt": None},
            {"account": "other", "halted": False, "halt": None},
        ],
    }
    halted = desk.post(
        "/api/trading/halt", role=Role.ADMIN, json={"account": "paper", "reason": "reconciling"}
    )
    assert halted.status_code == 200, halted.text
    paper, other = halted.json()["accounts"]
    assert paper["halted"] is True
    assert paper["halt"]["actor"] == "admin-user"
    assert paper["halt"]["reason"] == "reconciling"
    assert other["halted"] is False

    everything = desk.post("/api/trading/halt", role=Role.ADMIN, json={"reason": "bad data"})
    assert everything.json()["all_accounts"]["halted"] is True
    resumed = desk.post("/api/trading/resume", role=Role.ADMIN, json={"account": "paper"})
    paper, other = resumed.json()["accounts"]
    assert paper["halted"] is True  # the halt on all accounts still holds
    assert paper["halt"]["account"] is None
    assert other["halt"]["reason"] == "bad data"
    cleared = desk.post("/api/trading/resume", role=Role.ADMIN)
    assert cleared.status_code == 200
    assert [a["halted"] for a in cleared.json()["accounts"]] == [False, False]

    with desk.sessions() as s:
        events = s.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "trading_halt")
            .order_by(AuditEvent.id)
        ).all()
        assert [(e.event, e.entity_id) for e in events] == [
            ("trading.halted", "paper"),
            ("trading.halted", "all"),
            ("trading.resumed", "paper"),
            ("trading.resumed", "all"),
        ]
        assert "before" not in events[0].payload  # the switch had never been touched
        assert events[0].payload["after"]["reason"] == "reconciling"
        assert events[2].payload["before"]["halted"] is True
        assert events[2].payload["after"]["halted"] is False
        assert events[0].actor == "admin-user"
        assert events[0].role == "admin"
        assert events[0].token_id == desk.token_ids[Role.ADMIN]


def test_the_kill_switch_refuses_traders_and_bad_input_and_writes_nothing(desk: Api) -> None:
    audited = _audit_count(desk)  # the sample import's event
    refused = desk.post("/api/trading/halt", role=Role.TRADER, json={"reason": "x"})
    assert refused.status_code == 403
    assert desk.post("/api/trading/resume", role=Role.TRADER).status_code == 403
    unknown = desk.post(
        "/api/trading/halt", role=Role.ADMIN, json={"account": "nope", "reason": "x"}
    )
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["body.account"]
    no_reason = desk.post("/api/trading/halt", role=Role.ADMIN, json={"reason": ""})
    assert [e["field"] for e in no_reason.json()["errors"]] == ["body.reason"]
    extra = desk.post("/api/trading/resume", role=Role.ADMIN, json={"acount": "paper"})
    assert extra.status_code == 422
    assert _halt_count(desk) == 0
    assert _audit_count(desk) == audited
    assert desk.get("/api/trading/status", role=None).status_code == 401
