"""Parity with vectorbt on the real shared data, imported through our own import, on both
databases: SMA 10/50, long only, next-open fills, 0.1 % fees, on every symbol with a
complete history: identical entry and exit bars per symbol, final equity within 1e-9."""

from __future__ import annotations

import pickle
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from db.engine import make_engine, make_session_factory, unit_of_work
from db.migrate import upgrade
from db.queries.bar_coverage import bar_coverage
from db.queries.bars import bars_frame
from models.backtest import BacktestConfig, Costs
from models.enums import Timeframe
from tasks.backtest import records
from tasks.backtest.engine import BacktestResult, run_backtest
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import signals_for_grid
from tasks.backtest.strategies import get_strategy
from tests.conftest import BACKENDS, create_postgres_database, drop_postgres_database
from tests.run_cache import built_once, run_dir

vbt = pytest.importorskip("vectorbt")
CASH = 10_000.0
FEE = 0.001


@pytest.fixture(scope="module", params=BACKENDS)
def complete_panel(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    shared_daily_file: Path,
) -> PricePanel:
    """The complete histories, read back from a database the shared file was imported into.

    Built once per backend for the whole run (~15-20 s each) and shared by the workers
    through a file under a lock: `--dist loadgroup` would keep the module on one worker,
    but with pytest 9.2 it does not group (xdist 3.8 renames items through `_nodeid`,
    which pytest 9.2 no longer reads), and a module fixture built on each worker that
    drew one of its tests cost 4 imports instead of 2.
    """

    def build(staged: Path) -> None:
        panel = _import_and_read_back(request, tmp_path_factory, shared_daily_file)
        staged.write_bytes(pickle.dumps(panel))

    saved = built_once(run_dir(tmp_path_factory) / f"parity-panel-{request.param}.pickle", build)
    panel: PricePanel = pickle.loads(saved.read_bytes())
    return panel


def _import_and_read_back(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, shared_file: Path
) -> PricePanel:
    from tasks.import_bars import import_bar_file

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('parity')}/shared.db"
    else:
        url = create_postgres_database(request.getfixturevalue("postgres_admin"))
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(make_session_factory(engine)) as session:
        import_bar_file(session, shared_file)
    with make_session_factory(engine)() as session:
        coverage = bar_coverage(session, timeframe=Timeframe.D1)
        most = max(c.bars for c in coverage)
        symbols = [c.symbol for c in coverage if c.bars == most]
        frame = bars_frame(session, symbols, date(2015, 1, 1), date(2020, 12, 31))
    engine.dispose()
    if request.param == "postgres":
        drop_postgres_database(request.getfixturevalue("postgres_admin"), url)
    return PricePanel.from_frame(frame, symbols)


def _trade_bars(result: BacktestResult, column: int) -> list[tuple[int, int]]:
    mine = result.trades[result.trades["col"] == column]
    return sorted(
        (int(t["entry_bar"]), -1 if t["exit_reason"] == records.OPEN else int(t["exit_bar"]))
        for t in mine
    )


def _vbt_bars(records_arr: np.ndarray, column: int) -> list[tuple[int, int]]:
    mine = records_arr[records_arr["col"] == column]
    return sorted(
        (int(r["entry_idx"]), int(r["exit_idx"]) if int(r["status"]) == 1 else -1) for r in mine
    )


def test_sma_cross_trades_and_final_equity_equal_vectorbts(complete_panel: PricePanel) -> None:
    panel = complete_panel
    n = len(panel.symbols)
    assert n > 400  # the shared file's complete histories
    fn = get_strategy("sma_cross").fn
    config = BacktestConfig(init_cash=CASH * n, costs=Costs(fee_bps=FEE * 1e4))
    ours = run_backtest(panel, signals_for_grid(fn, panel, [{"fast": 10, "slow": 50}]), config)

    close, open_ = pd.DataFrame(panel.close), pd.DataFrame(panel.open)
    fast, slow = vbt.MA.run(close, 10), vbt.MA.run(close, 50)
    pf = vbt.Portfolio.from_signals(
        close,
        fast.ma_crossed_above(slow).vbt.fshift(1),
        fast.ma_crossed_below(slow).vbt.fshift(1),
        price=open_,
        fees=FEE,
        init_cash=CASH,
    )
    theirs = pf.trades.records_arr
    different = [
        s for j, s in enumerate(panel.symbols) if _trade_bars(ours, j) != _vbt_bars(theirs, j)
    ]
    assert different == []
    assert len(ours.trades) == len(theirs) > 1000
    np.testing.assert_allclose(ours.equity[-1], pf.final_value().to_numpy(), rtol=1e-9, atol=0)


def test_a_window_sweep_equals_vectorbts_run_combs(complete_panel: PricePanel) -> None:
    one = complete_panel.select([complete_panel.symbols[0]])
    windows = list(range(2, 31))
    grid = [{"fast": float(f), "slow": float(s)} for f in windows for s in windows if f < s]
    config = BacktestConfig(init_cash=CASH, costs=Costs(fee_bps=FEE * 1e4))
    ours = run_backtest(one, signals_for_grid(get_strategy("sma_cross").fn, one, grid), config)

    close, open_ = pd.Series(one.close[:, 0]), pd.Series(one.open[:, 0])
    fast, slow = vbt.MA.run_combs(close, window=windows, r=2, short_names=["fast", "slow"])
    pf = vbt.Portfolio.from_signals(
        close,
        fast.ma_crossed_above(slow).vbt.fshift(1),
        fast.ma_crossed_below(slow).vbt.fshift(1),
        price=open_,
        fees=FEE,
        init_cash=CASH,
    )
    np.testing.assert_allclose(ours.set_equity()[-1], pf.final_value().to_numpy(), rtol=1e-9)
    theirs = pf.trades.records_arr
    assert all(_trade_bars(ours, k) == _vbt_bars(theirs, k) for k in range(len(grid)))
