"""The stored backtests over HTTP, on both databases: two real runs of the backtest flow on
the sample bars (a sweep asked for by a trader's job, a single run from no job), then the
list with its filters and pages, one run in detail, a 404 and refused input."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from db.engine import make_engine, make_session_factory, unit_of_work
from db.queries.jobs import create_job
from db.queries.tokens import ensure_user
from flows.backtest import backtest
from models.enums import Role
from models.strategy import Backtest
from services.settings import get_settings
from tests.api_support import Api, api_settings, running_api

START, END = date(2017, 1, 1), date(2018, 12, 31)


@pytest.fixture
def stored(
    sample_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[Api, dict[str, Any], dict[str, Any]]]:
    """The API after a sweep run by job (trader-user's) and a single run without a job."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BACKTEST_PLOT_DIR", str(tmp_path / "plots"))
    get_settings.cache_clear()
    engine = make_engine(sample_db)
    with unit_of_work(make_session_factory(engine)) as session:
        user = ensure_user(session, "trader-user")
        job_id = create_job(session, "backtest", {"strategy": "sma_cross"}, None, user.id).id
    engine.dispose()
    sweep = backtest(
        "sma_cross", ["AAPL", "MSFT"], START, END, {"fast": [5, 10], "slow": 40}, job_id=job_id
    )
    single = backtest("rsi_reversion", ["AAPL"], START, END)
    get_settings.cache_clear()
    with running_api(api_settings(sample_db)) as api:
        yield api, {**sweep, "job_id": job_id}, single


def test_stored_runs_are_listed_read_in_detail_and_refused_when_unknown_or_asked_badly(
    stored: tuple[Api, dict[str, Any], dict[str, Any]],
) -> None:
    """One scenario (the two flow runs are the cost): the list, the detail, the refusals."""
    api, sweep, single = stored
    _the_list_pages_and_filters_the_runs_newest_first(api, sweep, single)
    _one_run_in_detail_has_its_sets_curve_and_trades_beside_buy_and_hold(api, sweep)
    _an_unknown_run_is_a_404_and_bad_input_a_422_that_writes_nothing(api)


def _the_list_pages_and_filters_the_runs_newest_first(
    api: Api, sweep: dict[str, Any], single: dict[str, Any]
) -> None:
    page = api.get("/api/backtests").json()
    assert [r["id"] for r in page["items"]] == [single["backtest_id"], sweep["backtest_id"]]
    assert page["next_offset"] is None
    newest, oldest = page["items"]
    assert (newest["kind"], newest["strategy"], newest["job_id"]) == (
        "single",
        "rsi_reversion",
        None,
    )
    assert newest["requested_by"] is None
    assert (oldest["kind"], oldest["job_id"], oldest["requested_by"]) == (
        "sweep",
        sweep["job_id"],
        "trader-user",
    )
    assert oldest["status"] == "completed"
    assert oldest["symbols"] == ["AAPL", "MSFT"]
    assert (oldest["start"], oldest["end"]) == (START.isoformat(), END.isoformat())
    assert oldest["params"] == {"fast": [5.0, 10.0], "slow": 40.0}
    assert oldest["best_params"] == sweep["best_params"]
    assert oldest["metrics"]["sharpe"] == pytest.approx(sweep["metrics"]["sharpe"])
    assert oldest["benchmark"]["total_return"] == pytest.approx(sweep["benchmark"]["total_return"])

    first = api.get("/api/backtests?limit=1").json()
    assert [r["id"] for r in first["items"]] == [single["backtest_id"]]
    assert first["next_offset"] == 1
    second = api.get("/api/backtests?limit=1&offset=1").json()
    assert [r["id"] for r in second["items"]] == [sweep["backtest_id"]]

    def ids(query: str) -> list[int]:
        response = api.get(f"/api/backtests?{query}")
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()["items"]]

    assert ids(f"job={sweep['job_id']}") == [sweep["backtest_id"]]
    assert ids("job=999") == []
    assert ids("strategy=rsi_reversion") == [single["backtest_id"]]
    assert ids("kind=sweep") == [sweep["backtest_id"]]
    assert ids("status=failed") == []
    assert ids("until=2000-01-01T00:00:00Z") == []


def _one_run_in_detail_has_its_sets_curve_and_trades_beside_buy_and_hold(
    api: Api, sweep: dict[str, Any]
) -> None:
    response = api.get(f"/api/backtests/{sweep['backtest_id']}")
    assert response.status_code == 200, response.text
    run = response.json()
    assert run["config"]["init_cash"] == 100_000.0
    assert run["metrics"]["final_equity"] == pytest.approx(sweep["metrics"]["final_equity"])
    assert set(run["benchmark"]) == set(run["metrics"])
    # every set of the grid, with its parameters and metrics
    assert run["param_results_total"] == 2
    assert sorted(r["params"]["fast"] for r in run["param_results"]) == [5.0, 10.0]
    assert {r["segment"] for r in run["param_results"]} == {"full"}
    assert all("sharpe" in r["metrics"] for r in run["param_results"])
    # both curves, oldest first, ending at the metrics' final equity
    curve = run["equity"]
    assert len(curve) > 400  # two years of daily bars
    assert curve == sorted(curve, key=lambda p: p["ts"])
    assert curve[0]["ts"].startswith("2017-01-03")
    assert curve[-1]["equity"] == pytest.approx(run["metrics"]["final_equity"])
    assert all(math.isfinite(p["benchmark"]) for p in curve)
    # the chosen set's trades, money as strings
    assert run["trades_total"] == sweep["trades"] == len(run["trades"]) > 0
    trade = run["trades"][0]
    assert isinstance(trade["pnl"], str)
    assert trade["symbol"] in {"AAPL", "MSFT"}
    closed = [t for t in run["trades"] if t["exit_reason"] != "open"]
    assert len(closed) == run["trades_count"]
    total = sum(Decimal(t["pnl"]) for t in run["trades"])
    gain = run["metrics"]["final_equity"] - run["config"]["init_cash"]
    assert float(total) == pytest.approx(gain, abs=1.0)  # closed and open P&L: the curve's


def _an_unknown_run_is_a_404_and_bad_input_a_422_that_writes_nothing(api: Api) -> None:
    missing = api.get("/api/backtests/987654")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert "987654" in missing.json()["detail"]
    with api.sessions() as session:
        before = session.scalar(select(func.count()).select_from(Backtest))
    for query in ("limit=-1", "limit=501", "offset=-1", "job=0", "kind=nope", "status=done"):
        response = api.get(f"/api/backtests?{query}")
        assert response.status_code == 422, (query, response.text)
        assert response.json()["errors"], query
    assert api.get("/api/backtests/0").status_code == 422
    assert api.get("/api/backtests/abc").status_code == 422
    assert api.get("/api/backtests", role=None).status_code == 401
    with api.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Backtest)) == before
    assert api.get("/api/backtests", role=Role.VIEWER).status_code == 200
