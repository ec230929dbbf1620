"""A client that retries every mutating request (same `Idempotency-Key`) after a dropped
connection or a 503 acts exactly once: one order per chat trade, one job per job request,
one approval per approval. On SQLite and Postgres, against a real server on loopback.

A dropped connection is a raw socket closed right after the request is sent. A 503 is the
database refusing a write: the test holds a lock the server's writer cannot get within
its (shortened) wait, so the request fails having done nothing, and the retry acts.
"""

from __future__ import annotations

import socket
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.tokens import issue_token
from models.enums import Role
from models.intents import ManualTrade
from models.ops import AuditEvent, Job
from models.trading import Order, TradeIntent
from models.users import ChatMessage
from services.settings import Settings
from tasks.execution.manual import place_manual_trades
from tests.api_support import api_settings
from tests.live_server import serve_in_thread

BUY = {"content": "buy 1 AAPL"}
BACKTEST = {
    "type": "backtest",
    "params": {
        "strategy": "sma_cross",
        "params": {"fast": 10, "slow": 50},
        "symbols": ["AAPL"],
        "start": "2016-01-01",
        "end": "2019-12-31",
    },
}


@dataclass
class Server:
    base: str
    token: str
    admin: str
    sessions: sessionmaker[Session]
    settings: Settings
    block: Callable[[], Any]  # a context manager: no writer gets the database meanwhile

    def client(self, token: str | None = None) -> httpx.Client:
        auth = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.base, headers=auth, timeout=60)

    def count(self, model: type[object], *where: Any) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


@pytest.fixture
def server(api_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.chdir(tmp_path)
    url = _failing_fast(api_db_url)
    settings = api_settings(url, chat_execute=True, jobs_log_dir=tmp_path / "jobs")
    engine = make_engine(api_db_url)
    sessions = make_session_factory(engine)
    with unit_of_work(sessions) as session:
        trader = issue_token(session, "retrying-trader", Role.TRADER).secret
        admin = issue_token(session, "retrying-admin", Role.ADMIN).secret
    try:
        with serve_in_thread(create_app(settings)) as base:
            yield Server(base, trader, admin, sessions, settings, lambda: _locked(api_db_url))
    finally:
        engine.dispose()


def test_a_chat_trade_retried_after_a_dropped_connection_is_one_order(server: Server) -> None:
    with server.client() as http:
        conversation = http.post("/api/conversations", json={"title": "retries"}).json()["id"]
        path = f"/api/conversations/{conversation}/message"
        key = uuid.uuid4().hex
        _send_and_drop(server.base, "POST", path, BUY, server.token, key)
        answer = _retry(http, "POST", path, BUY, key)
        again = _retry(http, "POST", path, BUY, key)
    assert answer.status_code == 200, answer.text
    assert again.headers["idempotency-replayed"] == "true"
    assert again.json() == answer.json()
    [trade] = answer.json()["payload"]["trades"]
    assert trade["order_status"] is not None
    assert server.count(TradeIntent, TradeIntent.idempotency_key.like("chat-%")) == 1
    assert server.count(Order, Order.parent_id.is_(None)) == 1
    assert server.count(ChatMessage, ChatMessage.conversation_id == conversation) == 2


def test_a_chat_trade_retried_after_a_503_is_one_order(server: Server) -> None:
    with server.client() as http:
        conversation = http.post("/api/conversations", json={"title": "retries"}).json()["id"]
        path = f"/api/conversations/{conversation}/message"
        key = uuid.uuid4().hex
        with server.block():
            refused = http.post(path, json=BUY, headers={"Idempotency-Key": key})
        assert refused.status_code == 503, refused.text
        assert refused.headers["retry-after"]
        assert server.count(Order) == 0  # a 503 did nothing
        assert server.count(ChatMessage, ChatMessage.conversation_id == conversation) == 0
        answer = _retry(http, "POST", path, BUY, key)
        assert answer.status_code == 200, answer.text
        assert "idempotency-replayed" not in answer.headers  # it acted, once, now
        _retry(http, "POST", path, BUY, key)
    assert server.count(Order, Order.parent_id.is_(None)) == 1
    assert server.count(ChatMessage, ChatMessage.conversation_id == conversation) == 2


def test_a_job_request_retried_after_a_drop_and_a_503_is_one_job(server: Server) -> None:
    with server.client() as http:
        key = uuid.uuid4().hex
        _send_and_drop(server.base, "POST", "/api/jobs", BACKTEST, server.token, key)
        first = _retry(http, "POST", "/api/jobs", BACKTEST, key)
        assert first.status_code == 202, first.text
        assert _retry(http, "POST", "/api/jobs", BACKTEST, key).json()["id"] == first.json()["id"]
        other = uuid.uuid4().hex
        with server.block():
            assert (
                http.post(
                    "/api/jobs", json=BACKTEST, headers={"Idempotency-Key": other}
                ).status_code
                == 503
            )
        second = _retry(http, "POST", "/api/jobs", BACKTEST, other)
        assert second.status_code == 202, second.text
    assert server.count(Job) == 2  # one per key, whatever the retries
    assert server.count(AuditEvent, AuditEvent.event == "job.requested") == 2


def test_an_approval_retried_after_a_dropped_connection_sends_one_order(server: Server) -> None:
    [intent_id] = _pending_intents(server, 1)
    body = {"intent_ids": [intent_id]}
    with server.client() as http:
        key = uuid.uuid4().hex
        _send_and_drop(server.base, "POST", "/api/trades/execute", body, server.token, key)
        answer = _retry(http, "POST", "/api/trades/execute", body, key)
        replay = _retry(http, "POST", "/api/trades/execute", body, key)
    assert answer.status_code == 200, answer.text
    assert replay.json() == answer.json()
    assert answer.json()[0]["order_status"] is not None
    assert server.count(Order, Order.intent_id == intent_id, Order.parent_id.is_(None)) == 1
    assert server.count(AuditEvent, AuditEvent.event == "trade.approved") == 1


def test_a_halt_and_a_watchlist_add_retried_act_once(server: Server) -> None:
    with server.client(server.admin) as http:
        key = uuid.uuid4().hex
        body = {"reason": "retry test"}
        with server.block():
            assert (
                http.post(
                    "/api/trading/halt", json=body, headers={"Idempotency-Key": key}
                ).status_code
                == 503
            )
        assert _retry(http, "POST", "/api/trading/halt", body, key).status_code == 200
        assert _retry(http, "POST", "/api/trading/halt", body, key).status_code == 200
        watch = uuid.uuid4().hex
        added = _retry(http, "POST", "/api/watchlist", {"symbol": "MSFT"}, watch)
        again = _retry(http, "POST", "/api/watchlist", {"symbol": "MSFT"}, watch)
    assert server.count(AuditEvent, AuditEvent.event == "trading.halted") == 1
    assert (added.status_code, again.status_code) == (201, 201)  # not a 409: the same add
    assert server.count(AuditEvent, AuditEvent.event == "watchlist.added") == 1


def test_the_same_key_with_another_request_is_refused_and_does_nothing(server: Server) -> None:
    with server.client() as http:
        key = uuid.uuid4().hex
        first = http.post(
            "/api/watchlist", json={"symbol": "MSFT"}, headers={"Idempotency-Key": key}
        )
        reused = http.post(
            "/api/watchlist", json={"symbol": "NVDA"}, headers={"Idempotency-Key": key}
        )
        bad = http.post(
            "/api/watchlist",
            json={"symbol": "KO"},
            headers={"Idempotency-Key": "a key with spaces"},
        )
    assert first.status_code == 201
    assert reused.status_code == 422
    assert "different request" in reused.json()["detail"]
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "header.idempotency-key"
    assert server.count(AuditEvent, AuditEvent.event == "watchlist.added") == 1


def test_keys_are_their_senders_own(server: Server) -> None:
    key = uuid.uuid4().hex
    with server.client() as trader, server.client(server.admin) as admin:
        mine = trader.post(
            "/api/watchlist", json={"symbol": "MSFT"}, headers={"Idempotency-Key": key}
        )
        theirs = admin.post(
            "/api/watchlist", json={"symbol": "MSFT"}, headers={"Idempotency-Key": key}
        )
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "idempotency-replayed" not in theirs.headers  # another sender: it acted
    assert server.count(AuditEvent, AuditEvent.event == "watchlist.added") == 2


# --- helpers -------------------------------------------------------------------------------


def _retry(
    http: httpx.Client, method: str, path: str, body: Any, key: str, tries: int = 60
) -> httpx.Response:
    """Send until the answer is neither a 409 (first still running) nor a 503."""
    for _ in range(tries):
        try:
            response = http.request(method, path, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if response.status_code not in (409, 503):
            return response
        time.sleep(min(float(response.headers.get("retry-after", "1")), 1.0))
    raise AssertionError(f"{method} {path}: no final answer after {tries} tries")


def _send_and_drop(base: str, method: str, path: str, body: Any, token: str, key: str) -> None:
    """Send a whole request, then hang up without reading a byte of the answer."""
    payload = httpx.Request(method, base + path, json=body).content
    url = httpx.URL(base)
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port or 80)) as sock:
        sock.sendall(head.encode() + payload)
        time.sleep(0.05)  # let the server read it before the hang-up


def _pending_intents(server: Server, n: int) -> list[int]:
    import asyncio

    trades = [ManualTrade(symbol="AAPL", side="buy", qty=Decimal(1)) for _ in range(n)]
    outcomes = asyncio.run(
        place_manual_trades(
            server.sessions,
            server.settings,
            trades,
            source=f"test-{uuid.uuid4().hex[:8]}",
            execute=False,
        )
    )
    return [o.intent_id for o in outcomes if o.intent_id is not None]


def _failing_fast(url: str) -> str:
    """The same database, with writers that give up after a second instead of a minute."""
    if url.startswith("sqlite"):
        return f"{url}?timeout=1"
    return f"{url}?options=-c%20lock_timeout%3D1000"


@contextmanager
def _locked(url: str) -> Iterator[None]:
    """Hold every write lock a request could need for as long as the block runs."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    parsed = make_url(url)
    pg = psycopg2.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname=parsed.database
    )
    try:
        with pg.cursor() as cur:  # reads go on; every write a request makes waits, then fails
            cur.execute(
                "LOCK TABLE chat_messages, jobs, watchlist, trading_halts, "
                "trade_intents, llm_calls IN EXCLUSIVE MODE"
            )
            yield
    finally:
        pg.rollback()
        pg.close()
