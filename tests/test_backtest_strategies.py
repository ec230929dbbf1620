"""The built-in strategies' rules, no look-ahead, and finding a user's own function."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.backtest import BUILTIN_STRATEGIES
from models.errors import InvalidInputError, NotFoundError
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import signals_for_grid
from tasks.backtest.strategies import get_strategy, resolve_params


def random_panel(n_bars: int = 400, n_symbols: int = 3, seed: int = 5) -> PricePanel:
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.02, (n_bars, n_symbols)), axis=0)
    close[:30, 2] = math.nan  # listed late
    close[200:205, 1] = math.nan  # a halt
    dates = pd.date_range("2020-01-01", periods=n_bars, freq="D", tz="UTC")
    return PricePanel(dates, tuple(f"S{i}" for i in range(n_symbols)), close.copy(),
                      close.copy(), close.copy(), close)  # fmt: skip


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_signals_never_depend_on_later_bars(name: str) -> None:
    panel = random_panel()
    fn = get_strategy(name).fn
    full = fn(panel, get_strategy(name).defaults)
    for cut in (60, 150, 333):
        early = fn(panel.between(0, cut), get_strategy(name).defaults)
        np.testing.assert_array_equal(early.entries, full.entries[:cut])
        np.testing.assert_array_equal(early.exits, full.exits[:cut])
    assert full.entries.any()
    assert full.exits.any()


@pytest.mark.parametrize("name", BUILTIN_STRATEGIES)
def test_no_signal_on_a_bar_without_a_price(name: str) -> None:
    panel = random_panel()
    signals = get_strategy(name).fn(panel, get_strategy(name).defaults)
    missing = np.isnan(panel.close)
    assert not (signals.entries & missing).any()
    assert not (signals.exits & missing).any()


def test_sma_cross_enters_on_the_cross_above_and_exits_on_the_cross_below() -> None:
    close = np.array([[5.0], [4.0], [3.0], [4.0], [6.0], [7.0], [4.0], [2.0], [1.0]])
    dates = pd.date_range("2020-01-01", periods=len(close), freq="D", tz="UTC")
    panel = PricePanel(dates, ("X",), close, close, close, close)
    signals = get_strategy("sma_cross").fn(panel, {"fast": 1, "slow": 3})
    # SMA3 from bar 2: 4, 3.67, 4.33, 5.67, 5.67, 4.33, 2.33; close crosses it up at bar 3
    assert np.flatnonzero(signals.entries[:, 0]).tolist() == [3]
    assert np.flatnonzero(signals.exits[:, 0]).tolist() == [6]


def test_a_grid_equals_its_sets_one_by_one() -> None:
    panel = random_panel()
    fn = get_strategy("sma_cross").fn
    grid = [{"fast": 5.0, "slow": 20.0}, {"fast": 10.0, "slow": 40.0}]
    together = signals_for_grid(fn, panel, grid)
    for k, params in enumerate(grid):
        alone = fn(panel, params)
        np.testing.assert_array_equal(together.entries[:, k * 3 : (k + 1) * 3], alone.entries)


def test_parameters_are_checked_by_name_and_value() -> None:
    assert resolve_params("macd", {"fast": 5}) == {"fast": 5.0, "slow": 26.0, "signal": 9.0}
    with pytest.raises(InvalidInputError, match="no parameter fats"):
        resolve_params("sma_cross", {"fats": 5})
    with pytest.raises(InvalidInputError, match="whole number"):
        resolve_params("sma_cross", {"fast": 10.5})
    with pytest.raises(InvalidInputError, match="below slow"):
        resolve_params("sma_cross", {"fast": 60, "slow": 50})
    with pytest.raises(NotFoundError, match="sma_cross"):
        get_strategy("moon_phase")


def test_a_users_own_function_is_found_by_module_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_strats.py").write_text(
        "from tasks.backtest.indicators import crossed_above, sma\n"
        "from tasks.backtest.signals import Signals\n"
        "def momentum(panel, params):\n"
        "    trend = sma(panel.close, int(params['window']))\n"
        "    return Signals(crossed_above(panel.close, trend), crossed_above(trend, panel.close))\n"
        "momentum.PARAMS = {'window': 20}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    strategy = get_strategy("my_strats:momentum")
    assert strategy.defaults == {"window": 20.0}
    signals = strategy.fn(random_panel(), resolve_params("my_strats:momentum", {"window": 10}))
    assert signals.entries.any()
    with pytest.raises(NotFoundError, match="no function nothing"):
        get_strategy("my_strats:nothing")
