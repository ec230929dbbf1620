"""Market data over HTTP: the council's point-in-time snapshot, metrics, live prices, bars."""

from __future__ import annotations

from models.enums import Role
from tests.api_support import Api


def test_the_snapshot_is_point_in_time_and_names_what_is_missing(api: Api) -> None:
    snap = api.get(
        "/api/market/snapshot", params={"as_of": "2019-06-03", "symbols": "aapl,MSFT,ZZZZ"}
    )
    assert snap.status_code == 200, snap.text
    body = snap.json()
    assert body["universe"] == ["AAPL", "MSFT", "ZZZZ"]
    assert body["missing"] == ["ZZZZ"]
    assert [m["symbol"] for m in body["symbols"]] == ["AAPL", "MSFT"]
    assert all(m["last_bar"] <= "2019-06-03T23:59:59" for m in body["symbols"])
    later = api.get("/api/market/snapshot", params={"as_of": "2019-06-10", "symbols": "AAPL,MSFT"})
    assert later.json()["data_hash"] != body["data_hash"]  # a later day saw more bars
    again = api.get("/api/market/snapshot", params={"as_of": "2019-06-03", "symbols": "MSFT,AAPL"})
    assert again.json()["data_hash"] != ""
    default = api.get("/api/market/snapshot").json()
    assert len(default["symbols"]) == 30  # every stored symbol, as of the newest bar


def test_bad_market_input_is_a_4xx_naming_the_field(api: Api) -> None:
    bad = api.get("/api/market/snapshot", params={"symbols": "AAPL,not a symbol!"})
    assert bad.status_code == 422
    assert bad.json()["errors"] == [
        {"field": "query.symbols", "message": bad.json()["errors"][0]["message"]}
    ]
    assert api.get("/api/market/snapshot", params={"as_of": "yesterday"}).status_code == 422
    empty = api.get("/api/market/metrics", params={"symbols": ","})
    assert empty.status_code == 422
    assert api.get("/api/market/metrics", params={"window": 2}).status_code == 422


def test_metrics_give_seven_day_returns_and_a_correlation_matrix(api: Api) -> None:
    body = api.get(
        "/api/market/metrics",
        params={"as_of": "2019-06-03", "symbols": "AAPL,MSFT,XOM", "window": 30},
    ).json()
    assert [r["symbol"] for r in body["returns"]] == ["AAPL", "MSFT", "XOM"]
    assert all(r["ret_7d"] is not None for r in body["returns"])
    corr = body["correlation"]
    assert corr["window"] == 30
    assert corr["symbols"] == ["AAPL", "MSFT", "XOM"]
    assert [corr["matrix"][i][i] for i in range(3)] == [1.0, 1.0, 1.0]
    assert corr["matrix"][0][1] == corr["matrix"][1][0]


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
