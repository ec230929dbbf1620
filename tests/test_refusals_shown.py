"""Refused trade intents where a user looks: `aitrader orders [--all]` and
`GET /api/orders?include=refused`.

A pre-trade check's refusal never becomes an order, so without these a refusal
was visible only in `council audit`. Rows are seeded with
tests/trading_factories.py; one test refuses through the real path (the kill
switch, then a council run).
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from db.engine import make_engine, make_session_factory, unit_of_work
from models.enums import IntentStatus, OrderStatus, Side
from models.trading import TradeIntent
from tests.api_support import Api
from tests.conftest import Run
from tests.trading_factories import at, make_account, make_intent, make_order

NOTIONAL = "order notional 31,010.00 > limit 10,000.00"
BUYING_POWER = "opens 100 x 310.10 = 31,010.00 > buying power 5,000.00"


def _checks(**failed: str) -> dict[str, Any]:
    """A council intent's record: sizing, price, and every check (the named ones failed)."""
    names = ("kill_switch", "symbol_allowed", "max_order_notional", "buying_power")
    return {
        "sizing": {"qty": "100"},
        "price": "310.10",
        "checks": {n: {"passed": n not in failed, "detail": failed.get(n, "ok")} for n in names},
    }


def _refused(
    s: Session,
    account: int,
    *,
    when: datetime,
    status: IntentStatus = IntentStatus.RISK_REJECTED,
    reason: str | None = None,
    **kwargs: Any,
) -> TradeIntent:
    key = f"refused-{account}-{when:%d%H}"
    intent = make_intent(s, account, status=status, key=key, created_at=at(6), **kwargs)
    intent.reject_reason = reason
    intent.updated_at = when  # the refusal, days after the intent was first asked for
    s.flush()
    return intent


def _seed(s: Session) -> dict[str, int]:
    """Refusals of every kind on two accounts, and intents that were not refused."""
    paper, other = make_account(s, "paper"), make_account(s, "other")
    checks = _refused(
        s,
        paper,
        when=at(9),
        qty=100,
        reason=f"{NOTIONAL}; {BUYING_POWER}",
        risk_checks=_checks(max_order_notional=NOTIONAL, buying_power=BUYING_POWER),
    )
    broker = _refused(
        s,
        paper,
        when=at(8),
        symbol="MSFT",
        status=IntentStatus.FAILED,
        reason="broker refused: insufficient qty",
        risk_checks=_checks(),
    )
    make_order(s, paper, symbol="MSFT", intent_id=broker.id, status=OrderStatus.REJECTED)
    silent = _refused(s, other, when=at(7), status=IntentStatus.FAILED, risk_checks=_checks())
    make_order(
        s,
        other,
        intent_id=silent.id,
        status=OrderStatus.REJECTED,
        reject_reason="account blocked",
        created_at=at(7),
    )
    sized = _refused(
        s,
        other,
        when=at(6, 16),
        side=Side.SELL,
        reason="sizing: rounds to 0 shares",
        risk_checks={"sizing": {"qty": "0"}, "price": "310.10"},
    )
    make_intent(s, paper, status=IntentStatus.PENDING_APPROVAL, created_at=at(9, 18))
    make_intent(s, paper, status=IntentStatus.SUBMITTED, created_at=at(9, 19))
    return {"checks": checks.id, "broker": broker.id, "silent": silent.id, "sized": sized.id}


# --- the API ---------------------------------------------------------------------------


def test_orders_include_refused_lists_each_refusal_with_its_check_reason_and_record(
    api: Api,
) -> None:
    with unit_of_work(api.sessions) as s:
        ids = _seed(s)
    response = api.get("/api/orders?include=refused")
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["items"]) == 2  # the orders are listed as before
    refused = body["refused"]
    assert [r["id"] for r in refused["items"]] == [
        ids[k] for k in ("checks", "broker", "silent", "sized")
    ]
    assert (refused["limit"], refused["offset"], refused["next_offset"]) == (50, 0, None)
    checks, broker, silent, sized = refused["items"]
    assert checks["account"] == "paper"
    assert checks["status"] == "risk_rejected"
    assert checks["checks"] == ["buying_power", "max_order_notional"]
    assert checks["reason"] == f"{NOTIONAL}; {BUYING_POWER}"
    assert checks["risk_checks"]["checks"]["buying_power"] == {
        "passed": False,
        "detail": BUYING_POWER,
    }
    assert Decimal(checks["qty"]) == 100
    assert checks["refused_at"].startswith("2020-01-09T15:00:00")
    assert checks["created_at"].startswith("2020-01-06T15:00:00")
    assert (broker["status"], broker["checks"]) == ("failed", ["broker"])
    assert broker["reason"] == "broker refused: insufficient qty"
    assert silent["reason"] == "account blocked"  # only the order kept the broker's words
    assert (sized["checks"], sized["side"]) == (["sizing"], "sell")


def test_refused_intents_page_and_filter_like_the_orders(api: Api) -> None:
    with unit_of_work(api.sessions) as s:
        ids = _seed(s)

    def refused(query: str) -> dict[str, Any]:
        response = api.get(f"/api/orders?include=refused&{query}")
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()["refused"]
        return page

    first = refused("limit=2")
    assert [r["id"] for r in first["items"]] == [ids["checks"], ids["broker"]]
    assert first["next_offset"] == 2
    rest = refused("limit=2&offset=2")
    assert [r["id"] for r in rest["items"]] == [ids["silent"], ids["sized"]]
    assert rest["next_offset"] is None
    assert [r["id"] for r in refused("account=other")["items"]] == [ids["silent"], ids["sized"]]
    assert [r["id"] for r in refused("symbol=msft")["items"]] == [ids["broker"]]
    window = "since=2020-01-07T00:00:00Z&until=2020-01-09T00:00:00Z"
    assert [r["id"] for r in refused(window)["items"]] == [ids["broker"], ids["silent"]]


def test_orders_without_include_are_unchanged_and_a_bad_include_is_a_clear_422(
    api: Api,
) -> None:
    with unit_of_work(api.sessions) as s:
        _seed(s)
    plain = api.get("/api/orders").json()
    assert plain["refused"] is None
    assert len(plain["items"]) == 2
    for bad in ("everything", "REFUSED", ""):
        response = api.get(f"/api/orders?include={bad}")
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["field"] == "query.include"
        assert "refused" in error["message"]


# --- the CLI ---------------------------------------------------------------------------


def _seed_db(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with unit_of_work(make_session_factory(engine)) as s:
            return _seed(s)
    finally:
        engine.dispose()


def _rows(out: str, title: str) -> list[list[str]]:
    """The rows of the table titled `title`, each cell's folded lines joined again."""
    rows: list[list[str]] = []
    for line in out.split(title, 1)[1].splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0]:
            rows.append(cells)
        else:  # a cell folded onto the next line: rich wraps at a word, or inside one
            joined = zip(rows[-1], cells, strict=True)
            rows[-1] = [" ".join(filter(None, pair)) for pair in joined]
    return rows


def _ids(out: str, title: str) -> list[int]:
    return [int(row[0]) for row in _rows(out, title)]


def test_orders_count_the_refusals_and_all_lists_them_newest_first(
    aitrader: Run, sample_db: str
) -> None:
    ids = _seed_db(sample_db)
    code, out = aitrader("orders")
    assert code == 0, out
    assert "4 trade intents were refused: `aitrader orders --all` shows them and why" in out
    assert "refused intents" not in out

    code, out = aitrader("orders", "--all")
    assert code == 0, out
    assert out.index("orders") < out.index("refused intents")
    rows = _rows(out, "refused intents")
    assert [int(r[0]) for r in rows] == [ids[k] for k in ("checks", "broker", "silent", "sized")]
    checks, broker, silent, sized = (r[1:] for r in rows)
    assert checks[:4] == ["paper", "AAPL", "buy", "100"]
    assert checks[4].replace(" ", "") == "buying_power,max_order_notional"
    assert checks[5] == f"{NOTIONAL}; {BUYING_POWER}"
    assert broker[4:] == ["broker", "broker refused: insufficient qty"]
    assert silent[4:] == ["broker", "account blocked"]
    assert sized[2:] == ["sell", "10", "sizing", "sizing: rounds to 0 shares"]
    assert "--all` shows them" not in out  # it does


def test_orders_all_honours_account_and_limit(aitrader: Run, sample_db: str) -> None:
    ids = _seed_db(sample_db)
    code, out = aitrader("orders", "--all", "--account", "other", "--limit", "1")
    assert code == 0, out
    assert _ids(out, "refused intents") == [ids["silent"]]
    code, out = aitrader("orders", "--account", "other")
    assert "2 trade intents were refused" in out


def test_no_refusal_no_line_and_all_says_there_is_none(aitrader: Run) -> None:
    code, out = aitrader("orders")
    assert code == 0, out
    assert "refused" not in out
    code, out = aitrader("orders", "--all")
    assert code == 0, out
    assert "no refused intents" in out


def test_a_council_refused_by_the_kill_switch_shows_why_in_orders_all(aitrader: Run) -> None:
    code, out = aitrader("trading", "halt", "--reason", "fire drill", "--by", "ops")
    assert code == 0, out
    code, out = aitrader("council", "run", "--as-of", "2019-06-03", "--approval", "auto")
    assert code == 0, out
    code, out = aitrader("orders")
    assert code == 0, out
    assert "no orders" in out
    assert re.search(r"\d+ trade intents? (was|were) refused", out), out
    code, out = aitrader("orders", "--all")
    assert code == 0, out
    rows = _rows(out, "refused intents")
    assert rows, out
    for _id, account, _symbol, side, _qty, check, reason in rows:
        assert (account, side) in {("paper", "buy"), ("paper", "sell")}
        assert check.startswith("kill_switch")
        assert "trading halted for all accounts by ops" in reason
