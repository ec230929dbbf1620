"""Metrics by hand on tiny curves and trade lists, and against vectorbt's on random curves."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tasks.backtest import records
from tasks.backtest.metrics import compute_metrics, metrics_table


def make_trades(rows: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=records.TRADE_DTYPE)
    for i, row in enumerate(rows):
        for key, value in row.items():
            out[i][key] = value
    return out


def test_return_drawdown_and_its_duration_by_hand() -> None:
    # 100 -> 110 -> 99 -> 104.5 -> 121: peak 110, trough 99 (-10 %), under water 2 bars
    equity = np.array([110.0, 99.0, 104.5, 121.0])
    m = compute_metrics(equity, make_trades([]), init_cash=100.0, periods_per_year=4)
    assert m.total_return == pytest.approx(0.21)
    assert m.cagr == pytest.approx(0.21)  # 4 bars at 4 per year: one year
    assert m.max_drawdown == pytest.approx(-0.1)
    assert m.max_drawdown_duration == 2
    assert m.calmar == pytest.approx(2.1)
    assert m.final_equity == 121.0


def test_trade_statistics_count_closed_trades_only() -> None:
    trades = make_trades([
        {"pnl": 30.0, "entry_bar": 0, "exit_bar": 2, "qty": 1, "entry_price": 10, "exit_price": 40},
        {"pnl": -10.0, "entry_bar": 3, "exit_bar": 4, "qty": 1, "entry_price": 10, "exit_price": 0},
        {"pnl": 99.0, "entry_bar": 4, "exit_bar": 9, "qty": 1, "entry_price": 10,
         "exit_reason": records.OPEN},
    ])  # fmt: skip
    m = compute_metrics(np.full(10, 100.0), trades, init_cash=100.0)
    assert m.trades == 2
    assert m.win_rate == 0.5
    assert m.profit_factor == 3.0
    assert m.expectancy == 10.0
    # held bars: 0-1, 3, 4-9 (the open one to the end) -> 9 of 10
    assert m.exposure == pytest.approx(0.9)
    # notional: 10 + 40, 10 + 0, 10 (entry only) over mean equity 100, per year
    assert m.turnover == pytest.approx(70 / 100 * 252 / 10)


def test_overlapping_trades_count_a_bar_once_and_no_trades_are_nan() -> None:
    trades = make_trades([
        {"entry_bar": 0, "exit_bar": 4, "group": 0},
        {"entry_bar": 2, "exit_bar": 6, "group": 0},
    ])  # fmt: skip
    table = metrics_table(np.full((8, 2), 100.0), trades, init_cash=100.0)
    assert table["exposure"].tolist() == [0.75, 0.0]
    assert math.isnan(table["win_rate"][1])
    assert math.isnan(table["sharpe"][1])  # a flat curve has no Sharpe
    assert table["trades"].tolist() == [2, 0]


def test_a_profit_factor_without_losses_is_infinite() -> None:
    m = compute_metrics(np.full(3, 100.0), make_trades([{"pnl": 5.0}]), init_cash=100.0)
    assert m.profit_factor == math.inf


def test_curve_metrics_match_vectorbt_on_random_curves() -> None:
    pytest.importorskip("vectorbt")
    rng = np.random.default_rng(7)
    equity = 1000 * np.cumprod(1 + rng.normal(0.0004, 0.012, (400, 5)), axis=0)
    # vectorbt's drawdown starts at the first bar; ours at the initial cash (a run that
    # loses from its first bar is in drawdown): start the curves at the initial cash
    equity[0] = 1000.0
    table = metrics_table(equity, make_trades([]), init_cash=1000.0)
    rets = pd.DataFrame(equity).pct_change()
    rets.iloc[0] = equity[0] / 1000 - 1
    acc = rets.vbt.returns(freq="1D", year_freq="252D")
    np.testing.assert_allclose(table["sharpe"], acc.sharpe_ratio().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(table["sortino"], acc.sortino_ratio().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(
        table["volatility"], acc.annualized_volatility().to_numpy(), rtol=1e-9
    )
    np.testing.assert_allclose(table["max_drawdown"], acc.max_drawdown().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(table["total_return"], acc.total().to_numpy(), rtol=1e-9)


def test_the_table_equals_the_metrics_of_each_group_alone() -> None:
    rng = np.random.default_rng(3)
    equity = 100 * np.cumprod(1 + rng.normal(0, 0.01, (50, 3)), axis=0)
    trades = make_trades([
        {"group": g, "entry_bar": 5 * g, "exit_bar": 5 * g + 7, "pnl": p, "qty": 1,
         "entry_price": 10, "exit_price": 11}
        for g, p in [(0, 3.0), (1, -2.0), (2, 1.0), (2, -1.0)]
    ])  # fmt: skip
    table = metrics_table(equity, trades, init_cash=100.0)
    for g in range(3):
        alone = compute_metrics(equity[:, g], trades[trades["group"] == g], init_cash=100.0)
        for name, value in alone.model_dump().items():
            assert table[name][g] == pytest.approx(value, nan_ok=True), name
