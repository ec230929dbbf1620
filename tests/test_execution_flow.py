"""The execution stage as Prefect runs it: one task per account, retried, failing alone.

Three accounts execute the same approved decisions: the built-in paper
broker; Alpaca (alpaca-py against the loopback fake) whose first order is
accepted but its answer lost; and an Alpaca account whose server is gone.
The lost answer is retried by Prefect and reconciled, not resent; the dead
account fails its own task and the flow, and the others finish regardless.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select

from db.engine import make_engine, make_session_factory
from db.queries.accounts import account_by_name
from flows.execution import execute_decisions
from flows.weekly_council import weekly_council
from models.enums import IntentStatus, OrderLeg
from models.trading import Order, TradeIntent
from services.settings import get_settings
from tests.fake_alpaca_rest import AcceptThenTimeout, FakeAlpacaRest, fake_alpaca_rest
from tests.test_weekly_council import AS_OF, UNIVERSE


@pytest.fixture
def db(
    sample_db_url: str, monkeypatch: pytest.MonkeyPatch, prefect_harness: None
) -> Iterator[Engine]:
    engine = make_engine(sample_db_url)
    monkeypatch.setenv("DATABASE_URL", sample_db_url)
    monkeypatch.setenv("BROKER_TASK_RETRIES", "2")
    monkeypatch.setenv("BROKER_RETRY_DELAY_S", "0")
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()
    engine.dispose()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _accounts(server: FakeAlpacaRest) -> str:
    keys = {"api_key": "fake-key", "secret_key": "fake-secret", "timeout_s": 0.5}
    return json.dumps(
        [
            {"name": "paper"},
            {"name": "alp", "broker": "alpaca", "base_url": server.base_url, **keys},
            {
                "name": "gone",
                "broker": "alpaca",
                "base_url": f"http://127.0.0.1:{_closed_port()}",
                **keys,
            },
        ]
    )


async def _council_then_execute() -> tuple[Any, Any]:
    council = await weekly_council(
        as_of=AS_OF, universe=UNIVERSE, approval="auto", execute=False, return_state=True
    )
    summary: Any = council.result()
    if asyncio.iscoroutine(summary):  # inside an event loop, result() must be awaited
        summary = await summary
    decisions = [d["decision"] for d in summary["decisions"] if d["approved"]]
    execution = await execute_decisions(decisions, return_state=True)
    return council, execution


def test_a_lost_answer_is_retried_without_a_second_order_and_a_dead_account_fails_alone(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_alpaca_rest() as server:
        monkeypatch.setenv("ACCOUNTS", _accounts(server))
        get_settings.cache_clear()
        server.enqueue(AcceptThenTimeout(2.0))  # the first order exists; its answer never comes
        council, execution = asyncio.run(_council_then_execute())
        posts: dict[str, int] = {}
        for request in server.submits():
            cid = request.client_order_id or ""
            posts[cid] = posts.get(cid, 0) + 1

    assert council.is_completed()
    assert execution.is_failed()
    assert "gone" in (execution.message or "")
    assert "alp" not in (execution.message or "").replace("gone", "")
    with make_session_factory(db)() as session:
        by_account: dict[str, list[Order]] = {}
        for name in ("paper", "alp", "gone"):
            account = account_by_name(session, name)
            rows = (
                session.scalars(
                    select(Order).where(Order.account_id == account.id, Order.leg == OrderLeg.ENTRY)
                ).all()
                if account
                else []
            )
            by_account[name] = list(rows)
        sent = session.scalars(
            select(TradeIntent).where(TradeIntent.status != IntentStatus.RISK_REJECTED)
        ).all()
    assert by_account["paper"], "the paper account executed despite the dead one"
    assert by_account["alp"], "the Alpaca account executed despite the dead one"
    assert all(o.broker_order_id for o in by_account["alp"])
    # one POST per order, the one whose answer was lost included: the retry asked first
    assert posts
    assert set(posts.values()) == {1}
    assert {o.client_order_id for o in by_account["alp"]} == set(posts)
    assert sent
