"""`aitrader positions`, `orders`, `trading halt|resume|status` and `council execute`,
as a user meets them after a council run on the sample week (paper broker)."""

from __future__ import annotations

import re

from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from models.council import CouncilDecision
from models.enums import DecisionStatus
from models.trading import Order, TradeIntent
from tests.conftest import Run

AS_OF = "2019-06-03"


def _approved_ids(db_url: str) -> list[int]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            stmt = select(CouncilDecision.id).where(
                CouncilDecision.status == DecisionStatus.APPROVED
            )
            return list(session.scalars(stmt))
    finally:
        engine.dispose()


def _rows(db_url: str) -> tuple[int, int]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            orders = len(session.scalars(select(Order)).all())
            intents = len(session.scalars(select(TradeIntent)).all())
            return orders, intents
    finally:
        engine.dispose()


def _reasons(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return [i.reject_reason or "" for i in session.scalars(select(TradeIntent))]
    finally:
        engine.dispose()


def test_a_council_run_with_auto_approval_leaves_positions_and_orders_the_user_can_list(
    aitrader: Run,
) -> None:
    code, out = aitrader("council", "run", "--as-of", AS_OF, "--approval", "auto")
    assert code == 0, out
    assert "orders sent" in out  # the execution table follows the decisions

    code, positions = aitrader("positions")
    assert code == 0, positions
    held = re.findall(r"│ paper\s+│ (\w+)\s+│\s+(-?\d+)", positions)
    assert held, positions

    code, orders = aitrader("orders")
    assert code == 0, orders
    for symbol, qty in held:
        assert re.search(rf"{symbol}\s+│ entry\s+│ \w+\s+│ {abs(int(qty))}\s", orders), orders
    entries, exits = orders.count("│ entry "), orders.count("│ take_") + orders.count("│ stop_")
    assert exits == 2 * entries >= 2 * len(held), orders

    code, working = aitrader("orders", "--open")
    assert code == 0
    assert "entry" not in working  # the entries filled; their exits are still working
    assert "│ take_" in working

    # the sample goes on after the council's week: the sync plays those bars, exits fill
    code, synced = aitrader("trading", "sync")
    assert code == 0, synced
    assert re.search(r"paper: [1-9]\d* new fills", synced), synced
    code, again = aitrader("trading", "sync")
    assert code == 0, again
    assert "paper: 0 new fills" in again  # booked once
    code, working = aitrader("orders", "--open")
    assert "│ take_" not in working  # one exit of each bracket filled, its sibling canceled


def test_a_halt_stops_council_execute_and_a_resume_lets_it_through_once(
    aitrader: Run, sample_db: str
) -> None:
    code, out = aitrader("trading", "halt", "--reason", "fire drill", "--by", "ops")
    assert code == 0, out
    code, status = aitrader("trading", "status")
    assert "HALTED" in status
    assert "fire drill" in status

    code, out = aitrader("council", "run", "--as-of", AS_OF, "--approval", "auto")
    assert code == 0, out
    decisions = _approved_ids(sample_db)
    assert decisions
    assert _rows(sample_db)[0] == 0  # nothing reached the broker, so no order row either
    assert all("trading halted for all accounts by ops" in r for r in _reasons(sample_db))

    code, out = aitrader("trading", "resume", "--by", "ops")
    assert code == 0, out
    code, out = aitrader("council", "execute", *map(str, decisions))
    assert code == 0, out
    after_first = _rows(sample_db)
    code, out = aitrader("council", "execute", *map(str, decisions))
    assert code == 0, out
    assert _rows(sample_db) == after_first  # executing again sends nothing new
    code, status = aitrader("trading", "status")
    assert "HALTED" not in status


def test_bad_trading_input_is_refused_with_a_clear_message(aitrader: Run) -> None:
    code, out = aitrader("trading", "halt", "--reason", "x", "--account", "nope")
    assert code == 1
    assert "no account 'nope' is configured" in out
    code, out = aitrader("council", "execute", "999999")
    assert code != 0
    assert "999999" in out
    code, out = aitrader("positions", "--account", "ghost")
    assert code == 1
    assert "ghost" in out
