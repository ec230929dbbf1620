"""Market data over HTTP: the council's point-in-time snapshot, metrics, live prices, bars."""

from __future__ import annotations

import pytest

from models.enums import Role
from tests.api_support import Api


def test_the_snapshot_is_point_in_time_and_names_what_is_missing(api: Api) -> None:
    snap = api.get("/api/market/snapshot", params={"as_of": "2019-06-03", "symbols": "aapl,MSFT"})
    assert snap.status_code == 200, snap.text
    body = snap.json()
    assert body["universe"] == ["AAPL", "MSFT"]
    assert body["missing"] == []
    assert [m["symbol"] for m in body["symbols"]] == ["AAPL", "MSFT"]
    assert all(m["last_bar"] <= "2019-06-03T23:59:59" for m in body["symbols"])
    later = api.get("/api/market/snapshot", params={"as_of": "2019-06-10", "symbols": "AAPL,MSFT"})
    assert later.json()["data_hash"] != body["data_hash"]  # a later day saw more bars
    again = api.get("/api/market/snapshot", params={"as_of": "2019-06-03", "symbols": "MSFT,AAPL"})
    assert again.json()["data_hash"] == body["data_hash"]  # the same bars, the same hash
    before = api.get("/api/market/snapshot", params={"as_of": "2015-01-05", "symbols": "AAPL"})
    assert before.json()["missing"] == ["AAPL"]  # its first bar came later
    assert before.json()["symbols"] == []
    default = api.get("/api/market/snapshot").json()
    assert len(default["symbols"]) == 30  # every stored symbol, as of the newest bar
    assert default["as_of"] == "2020-01-11T00:00:00Z"


def test_bad_market_input_is_a_4xx_naming_the_field(api: Api) -> None:
    unknown = api.get("/api/market/snapshot", params={"symbols": "AAPL,ZZZZ"})
    assert unknown.status_code == 422
    [problem] = unknown.json()["errors"]
    assert problem["field"] == "query.symbols"
    assert "ZZZZ" in problem["message"]
    bad = api.get("/api/market/snapshot", params={"symbols": "AAPL,not a symbol!"})
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["query.symbols"]
    day = api.get("/api/market/snapshot", params={"as_of": "yesterday"})
    assert day.status_code == 422
    assert [e["field"] for e in day.json()["errors"]] == ["query.as_of"]
    for params, field in [
        ({"symbols": ","}, "query.symbols"),
        ({"symbols": "ZZZZ"}, "query.symbols"),
        ({"window": 2}, "query.window"),
        ({"days": 0}, "query.days"),
        ({"days": 400}, "query.days"),
        ({"as_of": "9999-12-31"}, "query.as_of"),  # a window past date's range: refused
    ]:
        answer = api.get("/api/market/metrics", params=params)
        assert answer.status_code == 422, params
        assert [e["field"] for e in answer.json()["errors"]] == [field], params


def test_metrics_give_calendar_day_returns_and_a_correlation_matrix(api: Api) -> None:
    answer = api.get(
        "/api/market/metrics",
        params={"as_of": "2019-06-09", "symbols": "AAPL,MSFT,XOM", "window": 30},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["days"] == 7
    assert [r["symbol"] for r in body["returns"]] == ["AAPL", "MSFT", "XOM"]
    aapl = body["returns"][0]
    # as of Sunday 9 June: Friday's close over the close known a week earlier (Friday 31 May)
    assert aapl["last_bar"].startswith("2019-06-07")
    assert aapl["base_bar"].startswith("2019-05-31")
    closes = {
        b["ts"][:10]: float(b["close"])
        for b in api.get(
            "/api/market/bars/AAPL",
            params={"since": "2019-05-31T00:00:00Z", "until": "2019-06-08T00:00:00Z"},
        ).json()["items"]
    }
    assert aapl["ret"] == pytest.approx(closes["2019-06-07"] / closes["2019-05-31"] - 1, abs=1e-6)
    corr = body["correlation"]
    assert corr["window"] == 30
    assert corr["symbols"] == ["AAPL", "MSFT", "XOM"]
    assert [corr["matrix"][i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert corr["matrix"][0][1] == corr["matrix"][1][0]

    month = api.get(
        "/api/market/metrics", params={"as_of": "2019-06-09", "symbols": "AAPL", "days": 30}
    ).json()
    assert month["returns"][0]["base_bar"].startswith("2019-05-10")
    default = api.get("/api/market/metrics", params={"symbols": "AAPL,CBS"}).json()
    assert default["correlation"]["window"] == 60
    aapl_now, cbs = default["returns"]
    assert aapl_now["last_bar"].startswith("2020-01-10")
    assert aapl_now["base_bar"].startswith("2020-01-03")
    assert (cbs["close"], cbs["ret"]) == (None, None)  # no bar since December: not trading


def test_prices_are_the_live_caches_and_bars_are_paged_newest_first(api: Api) -> None:
    import time

    deadline = time.monotonic() + 10
    prices: list[dict[str, object]] = []
    while not prices and time.monotonic() < deadline:
        prices = api.get("/api/market/prices", params={"symbols": "AAPL,MSFT"}).json()
        time.sleep(0.05)
    assert {p["symbol"] for p in prices} <= {"AAPL", "MSFT"}
    assert prices
    assert all(float(str(p["price"])) > 0 for p in prices)
    page = api.get(
        "/api/market/bars/aapl",
        params={"since": "2019-05-01T00:00:00Z", "until": "2019-06-01T00:00:00Z", "limit": 5},
    ).json()
    stamps = [b["ts"] for b in page["items"]]
    assert stamps == sorted(stamps, reverse=True)
    assert stamps[0].startswith("2019-05-31")
    assert page["next_offset"] == 5
    rest = api.get(
        "/api/market/bars/AAPL",
        params={
            "since": "2019-05-01T00:00:00Z",
            "until": "2019-06-01T00:00:00Z",
            "offset": 5,
            "limit": 500,
        },
    ).json()
    assert len(page["items"]) + len(rest["items"]) == 22  # May 2019's trading days
    assert rest["next_offset"] is None
    assert api.get("/api/market/bars/ZZZZ").status_code == 404
    assert api.get("/api/market/bars/AAPL", params={"timeframe": "tick"}).status_code == 422
    assert api.get("/api/market/bars/AAPL", role=None).status_code == 401
    assert api.get("/api/market/bars/AAPL", role=Role.VIEWER).status_code == 200
