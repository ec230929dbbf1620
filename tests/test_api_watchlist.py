"""Each user's watchlist over HTTP: live quotes, trader-only writes, an audit event per change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from models.base import utcnow
from models.enums import Role
from models.market import WatchlistItem
from models.market_data import Tick
from models.ops import AuditEvent
from tests.api_support import LOCAL, Api, api_settings, running_api


@pytest.fixture
def desk(api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Api]:
    """The app streaming only XOM, so the test decides which symbols have a live quote."""
    monkeypatch.chdir(tmp_path)
    with running_api(api_settings(api_db_url, realtime_symbols=["XOM"])) as client:
        yield client


def _counts(api: Api) -> tuple[int, int]:
    with api.sessions() as s:
        items = s.scalar(select(func.count()).select_from(WatchlistItem)) or 0
        events = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
    return items, events


def test_a_trader_follows_and_drops_symbols_with_quotes_and_an_audit_trail(desk: Api) -> None:
    assert desk.get("/api/watchlist", role=Role.TRADER).json() == []
    added = desk.post("/api/watchlist", json={"symbol": " aapl ", "note": "earnings"})
    assert added.status_code == 201, added.text
    assert (added.json()["symbol"], added.json()["note"]) == ("AAPL", "earnings")
    assert desk.post("/api/watchlist", json={"symbol": "MSFT"}).status_code == 201
    desk.app.state.runtime.cache.update(Tick("AAPL", 300.0, 1.0, utcnow()))
    desk.app.state.runtime.cache.update(Tick("AAPL", 303.0, 1.0, utcnow()))

    aapl, msft = desk.get("/api/watchlist", role=Role.TRADER).json()
    assert (aapl["symbol"], msft["symbol"]) == ("AAPL", "MSFT")  # in the order added
    assert aapl["quote"]["price"] == 303.0
    assert aapl["quote"]["change"] == 3.0  # since the day's first price
    assert aapl["quote"]["change_pct"] == 1.0
    assert msft["quote"] is None  # not streamed
    assert msft["note"] is None
    assert desk.get("/api/watchlist", role=Role.VIEWER).json() == []  # another user's list

    removed = desk.delete("/api/watchlist/aapl")
    assert removed.status_code == 204
    assert [i["symbol"] for i in desk.get("/api/watchlist", role=Role.TRADER).json()] == ["MSFT"]
    with desk.sessions() as s:
        events = s.scalars(
            select(AuditEvent).where(AuditEvent.entity_type == "watchlist").order_by(AuditEvent.id)
        ).all()
        assert [e.event for e in events] == [
            "watchlist.added",
            "watchlist.added",
            "watchlist.removed",
        ]
        assert events[0].payload == {"after": {"symbol": "AAPL", "note": "earnings"}}
        assert events[2].payload == {"before": {"symbol": "AAPL", "note": "earnings"}}
        assert events[2].entity_id == events[0].entity_id
        assert {(e.actor, e.role, e.token_id) for e in events} == {
            ("trader-user", "trader", desk.token_ids[Role.TRADER])
        }


def test_bad_watchlist_writes_are_refused_and_write_nothing(desk: Api) -> None:
    assert desk.post("/api/watchlist", json={"symbol": "AAPL"}).status_code == 201
    before = _counts(desk)

    unknown = desk.post("/api/watchlist", json={"symbol": "ZZZZ"})
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["body.symbol"]
    assert "ZZZZ" in unknown.json()["errors"][0]["message"]
    malformed = desk.post("/api/watchlist", json={"symbol": "not a symbol!"})
    assert [e["field"] for e in malformed.json()["errors"]] == ["body.symbol"]
    long_note = desk.post("/api/watchlist", json={"symbol": "MSFT", "note": "x" * 501})
    assert [e["field"] for e in long_note.json()["errors"]] == ["body.note"]
    assert desk.post("/api/watchlist", json={"symbol": "MSFT", "colour": "red"}).status_code == 422
    again = desk.post("/api/watchlist", json={"symbol": "aapl"})
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert desk.post("/api/watchlist", role=Role.VIEWER, json={"symbol": "MSFT"}).status_code == 403
    assert desk.delete("/api/watchlist/AAPL", role=Role.VIEWER).status_code == 403
    assert desk.delete("/api/watchlist/MSFT").status_code == 404
    assert desk.delete("/api/watchlist/AAPL", role=Role.ADMIN).status_code == 404  # not theirs
    assert desk.delete("/api/watchlist/bad symbol!").status_code == 422

    assert _counts(desk) == before


def test_the_anonymous_reader_has_an_empty_watchlist_and_cannot_change_it(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = api_settings(api_db_url, api_anonymous_read=True, realtime_symbols=["XOM"])
    with running_api(settings, client=LOCAL) as api:
        assert api.get("/api/watchlist", role=None).json() == []
        refused = api.post("/api/watchlist", role=None, json={"symbol": "AAPL"})
        assert refused.status_code == 401
        assert _counts(api)[0] == 0
