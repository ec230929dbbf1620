"""`GET /api/sentiment`, `/api/sentiment/history`, `/api/news` and the `sentiment` WebSocket
topic, on both databases: figures as of any instant, the items behind them, clear 4xx."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select

from db.engine import unit_of_work
from db.queries.sentiment import store_sentiment
from models.enums import Role
from models.sentiment import SentimentParams, SymbolSentimentRow
from services.sentiment.lexicon import LexiconScorer
from tasks.sentiment import sentiment_as_of
from tests.api_support import Api, api_settings, running_api
from tests.fake_alpaca_stream import FakeAlpacaStream
from tests.news_factories import add_news

T = datetime(2019, 6, 3, 15, 0, tzinfo=UTC)
LEXICON = LexiconScorer().name


def _seed(api: Api) -> None:
    add_news(api.sessions, "1", "Apple shares soar after record earnings", ["AAPL"], T)
    add_news(api.sessions, "2", "Apple faces antitrust probe", ["AAPL"], T - timedelta(hours=6))
    add_news(api.sessions, "3", "Microsoft stock plunges", ["MSFT"], T - timedelta(hours=1))
    add_news(api.sessions, "4", "Apple upgraded", ["AAPL"], T + timedelta(hours=2))


def test_sentiment_as_of_counts_only_items_known_by_then(api: Api) -> None:
    _seed(api)
    at = T.isoformat()
    body = api.get("/api/sentiment", params={"symbols": "aapl,MSFT,XOM", "as_of": at}).json()
    assert body["scorer"] == LEXICON
    assert body["items"] == 3  # item 4 is known two hours later
    by = {s["symbol"]: s for s in body["symbols"]}
    assert by["AAPL"]["count"] == 2
    assert by["MSFT"]["count"] == 1
    assert by["AAPL"]["first_known_at"].startswith("2019-06-03T09:00:00")
    assert by["MSFT"]["score"] < 0
    assert by["XOM"] == {**by["XOM"], "count": 0, "score": None, "scorer": None}
    later = api.get("/api/sentiment", params={"symbols": "AAPL", "as_of": "2019-06-03T18:00Z"})
    assert later.json()["symbols"][0]["count"] == 3

    default = api.get("/api/sentiment", params={"as_of": at}).json()  # symbols with news
    assert [s["symbol"] for s in default["symbols"]] == ["AAPL", "MSFT"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"symbols": "NOPE1"}, "query.symbols"),
        ({"symbols": "A$B"}, "query.symbols"),
        ({"as_of": "2019-06-03T15:00:00"}, "query.as_of"),  # no offset: which instant?
        ({"as_of": "0001-01-01T00:00:00+00:00"}, "query.as_of"),
        ({"scorer": "x" * 200}, "query.scorer"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(api: Api, params: dict[str, str], field: str) -> None:
    response = api.get("/api/sentiment", params=params)
    assert response.status_code == 422, response.text
    assert any(e["field"].startswith(field) for e in response.json()["errors"])


def test_history_is_the_stored_rows_and_news_carries_each_items_score(api: Api) -> None:
    _seed(api)
    params = SentimentParams()
    with unit_of_work(api.sessions) as session:
        for hours in (0, 6, 12):
            report = sentiment_as_of(session, ["AAPL"], T + timedelta(hours=hours), params)
            store_sentiment(session, report.symbols)
    points = api.get("/api/sentiment/history", params={"symbol": "AAPL"}).json()["points"]
    assert [p["count"] for p in points] == [2, 3, 3]
    assert points[0]["as_of"].startswith("2019-06-03T15:00:00")
    assert {p["scorer"] for p in points} == {LEXICON}
    bounded = api.get(
        "/api/sentiment/history",
        params={"symbol": "AAPL", "until": (T + timedelta(hours=7)).isoformat()},
    ).json()["points"]
    assert len(bounded) == 2
    swapped = api.get(
        "/api/sentiment/history",
        params={"symbol": "AAPL", "since": "2020-01-01T00:00Z", "until": "2019-01-01T00:00Z"},
    )
    assert swapped.status_code == 422

    news = api.get("/api/news", params={"symbols": "AAPL", "as_of": T.isoformat()}).json()
    assert [n["source_id"] for n in news] == ["1", "2"]  # newest first; item 4 not yet known
    assert news[0]["sentiment"]["scorer"] == LEXICON
    assert news[0]["sentiment"]["label"] == "positive"
    assert news[0]["known_from"] == "received"


def test_stored_sentiment_is_pushed_on_the_websocket_topic(api: Api) -> None:
    _seed(api)
    headers = api.headers(Role.VIEWER)
    with api.client.websocket_connect("/ws", headers=headers) as ws:
        ws.send_text(
            json.dumps({"action": "subscribe", "topics": ["sentiment"], "symbols": ["AAPL"]})
        )
        assert json.loads(ws.receive_text())["type"] == "subscribed"
        with unit_of_work(api.sessions) as session:
            report = sentiment_as_of(session, ["AAPL", "MSFT"], T, SentimentParams())
            assert store_sentiment(session, report.symbols) == 2
        deadline = time.monotonic() + 15
        message: dict[str, object] = {}
        while time.monotonic() < deadline and message.get("type") != "sentiment":
            message = json.loads(ws.receive_text())
    data = message["data"]
    assert isinstance(data, dict)
    assert (data["event"], data["symbol"], data["count"]) == ("sentiment.updated", "AAPL", 2)
    assert data["scorer"] == LEXICON
    runtime = api.app.state.runtime
    assert runtime.sentiment.latest["AAPL"][1] == data["score"]
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SymbolSentimentRow)) == 2


def test_with_news_source_alpaca_the_server_stores_live_news_and_counts_it(
    api_db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """NEWS_SOURCE=alpaca, as a user sets it: the realtime process subscribes to the (fake)
    news stream, stores each item known from its arrival, and /metrics counts them."""
    monkeypatch.chdir(tmp_path)
    with FakeAlpacaStream("k", "s") as stream:
        settings = api_settings(
            api_db_url,
            news_source="alpaca",
            alpaca_api_key=SecretStr("k"),
            alpaca_secret_key=SecretStr("s"),
            alpaca_news_stream_url=stream.news_url,
        )
        with running_api(settings) as api:
            deadline = time.monotonic() + 15
            while stream.subscribed_news != {"*"} and time.monotonic() < deadline:
                time.sleep(0.05)
            sent = datetime.now(UTC)
            stream.push_news(
                {"id": 7, "headline": "Apple shares soar", "summary": "", "symbols": ["AAPL"],
                 "created_at": sent - timedelta(minutes=1), "url": None}
            )  # fmt: skip
            news: list[dict[str, object]] = []
            while not news and time.monotonic() < deadline:
                news = api.get("/api/news", params={"symbols": "AAPL"}).json()
                time.sleep(0.1)
            assert [n["source_id"] for n in news] == ["7"]
            assert news[0]["known_from"] == "received"
            assert str(news[0]["received_at"]) >= sent.isoformat()[:19]
            assert news[0]["sentiment"] is None  # scored by the next sentiment_analysis run
            metrics = api.get("/metrics").text
            assert 'aitrader_news_total{event="inserted"} 1.0' in metrics
