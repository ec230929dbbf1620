"""The portfolio now (cash from snapshots, positions marked) and its history, over HTTP.

The app streams only XOM from the simulator: the test feeds the price cache
for the symbols it wants priced live; the rest are marked at the sample's
last stored close (2020-01-10).
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from db.engine import unit_of_work
from db.queries.instruments import ensure_instruments
from models.accounts import AccountConfig
from models.base import utcnow
from models.market_data import Tick
from tests.api_support import Api, api_settings, running_api
from tests.trading_factories import at, make_account, make_position, make_snapshot

AAPL_CLOSE = Decimal("310.33")


@pytest.fixture
def desk(api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Api]:
    """The app with two paper accounts, streaming only XOM."""
    monkeypatch.chdir(tmp_path)
    accounts = [AccountConfig(name="paper"), AccountConfig(name="other")]
    settings = api_settings(api_db_url, accounts=accounts, realtime_symbols=["XOM"])
    with running_api(settings) as client:
        yield client


def _seed_books(api: Api) -> None:
    with unit_of_work(api.sessions) as s:
        ensure_instruments(s, ["ZZZZ"])  # an instrument without a single bar: no price
        paper, other = make_account(s, "paper"), make_account(s, "other")
        make_position(s, paper, symbol="AAPL", qty=10, avg_price="300", realized_pnl="7")
        make_position(s, paper, symbol="MSFT", qty=-5, avg_price="150")
        make_position(s, other, symbol="AAPL", qty=2, avg_price="320")
        make_position(s, other, symbol="ZZZZ", qty=1, avg_price="10")
        make_snapshot(s, paper, ts=at(6), cash="100000")
        make_snapshot(s, paper, ts=at(9), cash="97750")
        make_snapshot(s, other, ts=at(8), cash="5000")
    api.app.state.runtime.cache.update(Tick("MSFT", 160.0, 1.0, utcnow()))


def test_the_portfolio_marks_positions_and_adds_the_latest_cash(desk: Api) -> None:
    _seed_books(desk)
    one = desk.get("/api/portfolio?account=paper")
    assert one.status_code == 200, one.text
    body = one.json()
    assert body["account"] == "paper"
    assert Decimal(body["cash"]) == Decimal("97750")  # the latest snapshot's
    assert body["cash_as_of"].startswith("2020-01-09")
    assert [(p["symbol"], p["price_source"]) for p in body["positions"]] == [
        ("AAPL", "close"),
        ("MSFT", "live"),
    ]
    aapl_value = 10 * AAPL_CLOSE
    assert Decimal(body["positions_value"]) == aapl_value - 800
    assert Decimal(body["unrealized_pnl"]) == 10 * (AAPL_CLOSE - 300) - 50
    assert Decimal(body["realized_pnl"]) == 7
    assert Decimal(body["total_value"]) == Decimal("97750") + aapl_value - 800
    assert body["unpriced"] == []

    every = desk.get("/api/portfolio").json()
    assert every["account"] is None
    assert Decimal(every["cash"]) == Decimal("102750")
    assert every["cash_as_of"].startswith("2020-01-08")  # the older of the two accounts'
    assert every["unpriced"] == ["ZZZZ"]
    [zzzz] = [p for p in every["positions"] if p["symbol"] == "ZZZZ"]
    assert (zzzz["price"], zzzz["market_value"], zzzz["price_source"]) == (None, None, None)
    assert Decimal(every["positions_value"]) == 12 * AAPL_CLOSE - 800
    assert Decimal(every["total_value"]) == Decimal("102750") + 12 * AAPL_CLOSE - 800


def test_the_portfolio_of_an_account_without_books_is_empty_and_unknown_is_404(
    desk: Api,
) -> None:
    empty = desk.get("/api/portfolio?account=other").json()
    assert (empty["cash"], empty["cash_as_of"], empty["positions"]) == ("0", None, [])
    assert Decimal(empty["total_value"]) == 0
    missing = desk.get("/api/portfolio?account=nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert desk.get("/api/portfolio", role=None).status_code == 401


def test_the_history_is_the_snapshots_oldest_first_paged_and_windowed(desk: Api) -> None:
    _seed_books(desk)

    def curve(query: str) -> list[tuple[str, str]]:
        response = desk.get(f"/api/portfolio/history{query}")
        assert response.status_code == 200, response.text
        return [(s["account"], s["ts"][:10]) for s in response.json()["items"]]

    assert curve("") == [
        ("paper", "2020-01-06"),
        ("other", "2020-01-08"),
        ("paper", "2020-01-09"),
    ]
    assert curve("?account=paper") == [("paper", "2020-01-06"), ("paper", "2020-01-09")]
    assert curve("?since=2020-01-08T00:00:00Z") == [
        ("other", "2020-01-08"),
        ("paper", "2020-01-09"),
    ]
    assert curve("?until=2020-01-08T15:00:00Z") == [("paper", "2020-01-06")]
    first = desk.get("/api/portfolio/history?limit=2").json()
    assert (len(first["items"]), first["next_offset"]) == (2, 2)
    rest = desk.get("/api/portfolio/history?limit=2&offset=2").json()
    assert (len(rest["items"]), rest["next_offset"]) == (1, None)
    [snapshot] = rest["items"]
    assert Decimal(snapshot["cash"]) == Decimal("97750")
    assert Decimal(snapshot["equity"]) == Decimal("100750")


def test_the_history_refuses_an_unknown_account_and_a_backwards_window(desk: Api) -> None:
    assert desk.get("/api/portfolio/history?account=nope").status_code == 404
    window = desk.get(
        "/api/portfolio/history?since=2020-01-09T00:00:00Z&until=2020-01-08T00:00:00Z"
    )
    assert window.status_code == 422
    assert [e["field"] for e in window.json()["errors"]] == ["query.until"]
    naive = desk.get("/api/portfolio/history?since=2020-01-09T00:00:00")
    assert naive.status_code == 422
