"""The backtest flow end to end on the sample bars, on both databases: what it stores,
what it draws, how sweeps and walk-forwards choose, and what it refuses."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from prefect import get_client
from sqlalchemy import func, select

from db.engine import make_engine, make_session_factory
from db.queries.backtests import get_backtest, param_results
from flows.backtest import backtest
from models.backtest import BacktestConfig, BacktestParamResult, BacktestTrade, Costs, WalkForward
from models.enums import RunStatus
from models.errors import InvalidInputError, NotFoundError
from models.strategy import Backtest
from services.settings import get_settings
from tests.conftest import Run

START, END = date(2016, 1, 1), date(2019, 12, 31)


@pytest.fixture
def bt_db(sample_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("BACKTEST_PLOT_DIR", str(tmp_path / "plots"))
    monkeypatch.setenv("BACKTEST_CHUNK_SIZE", "3")
    get_settings.cache_clear()
    yield sample_db
    get_settings.cache_clear()


def _read(url: str, backtest_id: int) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            row = get_backtest(session, backtest_id)
            results = param_results(session, backtest_id, limit=10_000)
            trades = session.scalar(
                select(func.count()).where(BacktestTrade.backtest_id == backtest_id)
            )
            return {
                "row": row,
                "results": [(r.segment, r.params, r.metrics) for r in results],
                "trades": trades,
            }
    finally:
        engine.dispose()


def _artifact_keys() -> set[str]:
    async def read() -> set[str]:
        async with get_client() as client:
            # the raw endpoint: this client leaves fields empty that this server requires
            # only this flow's keys: other tests on the session's server leave hundreds
            response = await client._client.post(
                "/artifacts/filter",
                json={
                    "limit": 200,
                    "offset": 0,
                    "sort": "ID_DESC",
                    "artifacts": {"key": {"like_": "backtest-"}},
                },
            )
        keys = {a.get("key") or "" for a in response.json()}
        return {k for k in keys if k.startswith("backtest-")}

    return asyncio.run(read())


def test_a_single_run_stores_its_metrics_benchmark_curve_trades_and_plot(bt_db: str) -> None:
    config = BacktestConfig(costs=Costs(fee_bps=10))
    summary = backtest(
        "sma_cross", ["AAPL", "MSFT"], START, END, params={"fast": 10, "slow": 50}, config=config
    )
    stored = _read(bt_db, summary["backtest_id"])
    row: Backtest = stored["row"]
    assert row.status is RunStatus.COMPLETED
    assert row.kind == "single"
    assert row.best_params == {"fast": 10.0, "slow": 50.0}
    assert row.metrics is not None
    assert row.benchmark is not None
    assert row.metrics["trades"] == row.trades_count > 0
    assert row.metrics["final_equity"] == pytest.approx(summary["metrics"]["final_equity"])
    assert row.benchmark["total_return"] != row.metrics["total_return"]
    assert stored["trades"] >= row.trades_count  # open trades are stored too
    assert row.equity is not None
    first, last = row.equity[0], row.equity[-1]
    assert first[0].startswith("2016-01-04")  # the first trading day in the range
    assert last[0].startswith("2019-12-31")
    assert last[1] == pytest.approx(row.metrics["final_equity"])
    ((segment, params, metrics),) = stored["results"]
    assert (segment, params) == ("full", {"fast": 10.0, "slow": 50.0})
    assert metrics["sharpe"] == pytest.approx(row.metrics["sharpe"])
    plot = Path(summary["plot"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {"backtest-metrics", "backtest-equity", "backtest-equity-plot"} <= _artifact_keys()


def test_a_sweep_scores_every_set_in_chunks_and_keeps_the_best_ones_trades(bt_db: str) -> None:
    summary = backtest(
        "sma_cross",
        ["AAPL", "MSFT", "XOM"],
        START,
        END,
        params={"fast": [5, 10, 20], "slow": [30, 60, 90]},
        optimise="sharpe",
    )
    stored = _read(bt_db, summary["backtest_id"])
    row: Backtest = stored["row"]
    assert row.kind == "sweep"
    results = stored["results"]
    assert len(results) == 9  # 3 chunks of 3 sets
    assert {(p["fast"], p["slow"]) for _, p, _ in results} == {
        (f, s) for f in (5.0, 10.0, 20.0) for s in (30.0, 60.0, 90.0)
    }
    sharpes = {(p["fast"], p["slow"]): m["sharpe"] for _, p, m in results}
    best = max(sharpes, key=lambda k: sharpes[k])
    assert (row.best_params or {}) == {"fast": best[0], "slow": best[1]}
    assert row.metrics is not None
    assert row.metrics["sharpe"] == pytest.approx(sharpes[best])
    assert "backtest-sweep" in _artifact_keys()


def test_stop_levels_can_be_swept_like_parameters(bt_db: str) -> None:
    summary = backtest(
        "sma_cross",
        ["AAPL"],
        START,
        END,
        params={"fast": 10, "slow": 50, "stop_loss": [0.0, 0.02]},
        optimise="total_return",
    )
    results = _read(bt_db, summary["backtest_id"])["results"]
    by_stop = {p["stop_loss"]: m for _, p, m in results}
    assert set(by_stop) == {0.0, 0.02}
    assert by_stop[0.0]["total_return"] != by_stop[0.02]["total_return"]


def test_a_walk_forward_optimises_in_sample_and_reports_out_of_sample(bt_db: str) -> None:
    summary = backtest(
        "sma_cross",
        ["AAPL", "MSFT"],
        START,
        END,
        params={"fast": [5, 10], "slow": [30, 50]},
        walk_forward=WalkForward(train=252, test=126),
    )
    stored = _read(bt_db, summary["backtest_id"])
    row: Backtest = stored["row"]
    assert row.kind == "walk_forward"
    segments = [s for s, _, _ in stored["results"]]
    n_windows = sum(s.endswith(":out") for s in segments)
    # 1,006 bars: 252 to train, then test windows of 126 (the last one shorter)
    assert n_windows == math.ceil((1006 - 252) / 126)
    assert segments.count("wf0:in") == 4  # every set scored in sample
    assert segments.count("wf0:out") == 1  # only the winner out of sample
    assert row.equity is not None
    assert len(row.equity) == 1006 - 252  # the stitched out-of-sample curve
    assert row.metrics is not None
    assert row.metrics["final_equity"] == pytest.approx(row.equity[-1][1])
    assert "backtest-walk-forward" in _artifact_keys()


def test_a_symbol_without_bars_fails_the_run_and_says_which(bt_db: str) -> None:
    state = backtest("sma_cross", ["AAPL", "NOPE"], START, END, return_state=True)
    assert state.is_failed()
    with pytest.raises(InvalidInputError, match="NOPE"):
        state.result()
    engine = make_engine(bt_db)
    with make_session_factory(engine)() as session:
        row = session.scalars(select(Backtest).order_by(Backtest.id.desc())).first()
        assert row is not None
        assert row.status is RunStatus.FAILED
        assert "NOPE" in (row.error or "")
        assert session.scalar(select(func.count()).select_from(BacktestParamResult)) == 0
    engine.dispose()


def test_an_unknown_strategy_or_parameter_is_refused_before_anything_is_written(
    bt_db: str,
) -> None:
    for kwargs in ({"strategy": "moon_phase"}, {"params": {"fats": 3}}):
        call: dict[str, Any] = {"strategy": "sma_cross", **kwargs}
        state = backtest(symbols=["AAPL"], start=START, end=END, return_state=True, **call)
        assert state.is_failed()
        with pytest.raises((InvalidInputError, NotFoundError)):
            state.result()
    engine = make_engine(bt_db)
    with make_session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Backtest)) == 0
    engine.dispose()


def test_the_cli_prints_the_metrics_table_and_where_the_plot_is(
    aitrader: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKTEST_PLOT_DIR", str(tmp_path / "plots"))
    code, out = aitrader(
        "backtest", "run", "--strategy", "sma_cross", "--param", "fast=10", "--param", "slow=50",
        "--symbols", "AAPL,MSFT", "--start", "2016-01-01", "--end", "2019-12-31",
        "--fee-bps", "10",
    )  # fmt: skip
    assert code == 0, out
    for word in ("sharpe", "max_drawdown", "buy and hold", "fast=10 slow=50", "equity plot"):
        assert word in out
    plot = Path(out.split("equity plot:")[1].split()[0])
    assert plot.is_file()

    code, out = aitrader(
        "backtest", "run", "--strategy", "sma_cross", "--param", "fast=5:15:5",
        "--param", "slow=40,60", "--symbols", "AAPL", "--start", "2016-01-01",
        "--end", "2019-12-31",
    )  # fmt: skip
    assert code == 0, out
    assert "backtest" in out


def test_the_cli_refuses_a_malformed_parameter_in_one_line(aitrader: Run) -> None:
    code, out = aitrader(
        "backtest", "run", "--strategy", "sma_cross", "--param", "fast=ten",
        "--symbols", "AAPL", "--start", "2016-01-01", "--end", "2019-12-31",
    )  # fmt: skip
    assert code == 1
    assert "error:" in out
    assert "fast=ten" in out
    assert "Traceback" not in out


def test_a_sweep_on_a_dask_cluster_scores_the_same_as_on_threads(
    bt_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    distributed = pytest.importorskip("distributed")
    params: dict[str, float | list[float]] = {"fast": [5, 10, 20], "slow": [40, 80]}
    on_threads = backtest("sma_cross", ["AAPL", "MSFT"], START, END, params=params)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
        host="127.0.0.1", dashboard_address=None,
    ) as cluster:  # fmt: skip
        monkeypatch.setenv("BACKTEST_DASK_ADDRESS", cluster.scheduler_address)
        get_settings.cache_clear()
        on_dask = backtest("sma_cross", ["AAPL", "MSFT"], START, END, params=params)
    assert on_dask["best_params"] == on_threads["best_params"]
    assert on_dask["metrics"] == on_threads["metrics"]
    first = {tuple(p.values()): m for _, p, m in _read(bt_db, on_threads["backtest_id"])["results"]}
    second = {tuple(p.values()): m for _, p, m in _read(bt_db, on_dask["backtest_id"])["results"]}
    assert first == second


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--symbols", "NOPE", "--start", "2016-01-01", "--end", "2019-12-31"],
            "error: symbols: no daily bars from 2016-01-01 to 2019-12-31 for NOPE",
        ),
        (
            ["--symbols", "AAPL", "--start", "2021-01-01", "--end", "2021-12-31"],
            "error: symbols: no daily bars from 2021-01-01 to 2021-12-31 for AAPL",
        ),
        (
            ["--symbols", "AAPL", "--start", "2019-01-01", "--end", "2018-01-01"],
            "error: backtest: end 2018-01-01 must be after start 2019-01-01",
        ),
        (
            ["--symbols", "AAPL", "--start", "2016-01-01", "--end", "2019-12-31",
             "--strategy", "moon_phase"],
            "error: no strategy 'moon_phase': built-ins are sma_cross, rsi_reversion, macd, "
            "bollinger_breakout, or name your own as package.module:function",
        ),
    ],
)  # fmt: skip
def test_the_cli_refuses_what_the_flow_would_before_prefect_starts(
    aitrader: Run, monkeypatch: pytest.MonkeyPatch, args: list[str], line: str
) -> None:
    """No Prefect answers at PREFECT_API_URL: the refusal still comes, so it came first."""
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    code, out = aitrader("backtest", "run", "--strategy", "sma_cross", *args)
    assert (code, out.strip()) == (1, line)
