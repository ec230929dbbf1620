"""Indicators against TA-Lib on complete columns, and on ragged ones as if gaps were not there."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tasks.backtest.indicators import bollinger, crossed_above, ema, macd, rsi, sma, sma_many

talib = pytest.importorskip("talib")


@pytest.fixture(scope="module")
def prices() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.round(100 * np.cumprod(1 + rng.normal(0, 0.015, (1500, 3)), axis=0), 4)


def test_sma_ema_rsi_macd_and_bands_equal_talib(prices: np.ndarray) -> None:
    for j in range(prices.shape[1]):
        x = prices[:, j]
        col = x[:, None]
        np.testing.assert_allclose(sma(col, 20)[:, 0], talib.SMA(x, 20), rtol=1e-9)
        np.testing.assert_allclose(ema(col, 12)[:, 0], talib.EMA(x, 12), rtol=1e-9)
        np.testing.assert_allclose(rsi(col, 14)[:, 0], talib.RSI(x, 14), rtol=1e-9)
        ours = macd(col, 12, 26, 9)
        for mine, theirs in zip(ours, talib.MACD(x, 12, 26, 9), strict=True):
            np.testing.assert_allclose(mine[:, 0], theirs, rtol=1e-9, atol=1e-12)
        mid, upper, lower = bollinger(col, 20, 2.0)
        t_upper, t_mid, t_lower = talib.BBANDS(x, 20, 2.0, 2.0)
        np.testing.assert_allclose(mid[:, 0], t_mid, rtol=1e-9)
        np.testing.assert_allclose(upper[:, 0], t_upper, rtol=1e-9)
        np.testing.assert_allclose(lower[:, 0], t_lower, rtol=1e-9)


def test_a_ragged_column_is_computed_over_its_own_bars(prices: np.ndarray) -> None:
    x = prices[:, :1].copy()
    x[:40] = math.nan  # listed late
    x[700:710] = math.nan  # a halt
    x[-25:] = math.nan  # delisted
    valid = ~np.isnan(x[:, 0])
    compressed = x[valid]
    for fn, n in ((sma, 30), (ema, 30), (rsi, 14)):
        full: np.ndarray = fn(x, n)[:, 0]
        alone: np.ndarray = fn(compressed, n)[:, 0]
        assert np.isnan(full[~valid]).all()
        np.testing.assert_allclose(full[valid], alone, rtol=1e-12)


def test_sma_many_computes_each_window_once_with_the_same_values(prices: np.ndarray) -> None:
    means = sma_many(prices, [5, 50, 5, 20])
    assert sorted(means) == [5, 20, 50]
    np.testing.assert_array_equal(means[20], sma(prices, 20))


def test_crossed_above_needs_a_bar_below_first() -> None:
    a = np.array([[math.nan], [1.0], [3.0], [2.0], [1.0], [3.0]])
    b = np.full_like(a, 2.0)
    assert np.flatnonzero(crossed_above(a, b)[:, 0]).tolist() == [2, 5]
    starts_above = np.array([[3.0], [4.0], [1.0], [3.0]])
    assert np.flatnonzero(crossed_above(starts_above, 2.0)[:, 0]).tolist() == [3]
