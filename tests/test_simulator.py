"""The GBM simulator: its paths have the statistics it was given, and its task starts and stops."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC

import numpy as np
import pytest

from models.market_data import Tick
from realtime.sources.base import MarketDataSource
from realtime.sources.gbm_params import GBMDefaults, GBMParams
from realtime.sources.simulator import GBMSimulator

TARGET = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, -0.2], [0.3, -0.2, 1.0]])
SIGMA = np.array([0.2, 0.3, 0.4])
STEPS = 20_000


def make_params(
    symbols: tuple[str, ...] = ("A", "B", "C"),
    corr: np.ndarray = TARGET,
    sigma: np.ndarray = SIGMA,
) -> GBMParams:
    n = len(symbols)
    return GBMParams(symbols, np.full(n, 100.0), np.full(n, 0.05), sigma, corr)


def run(sim: GBMSimulator, steps: int) -> np.ndarray:
    """Prices after each step, one column per symbol in the simulator's order."""
    order = sim.params.symbols
    rows = []
    for _ in range(steps):
        by_symbol = {t.symbol: t.price for t in sim.step()}
        rows.append([by_symbol[s] for s in order])
    return np.array(rows)


def test_log_returns_have_the_target_correlation_and_volatility() -> None:
    # The standard error of a sample correlation is about (1 - rho^2) / sqrt(n):
    # at most 0.0071 for these targets with n = 20,000, so 0.03 is over four errors.
    # That of a sample volatility is sigma / sqrt(2n), 0.5 %; 3 % is six errors.
    sim = GBMSimulator(make_params(), seed=42, jump_prob=0.0)
    prices = np.vstack([[100.0, 100.0, 100.0], run(sim, STEPS)])
    returns = np.diff(np.log(prices), axis=0)
    error = np.abs(np.corrcoef(returns.T) - TARGET).max()
    assert error < 0.03
    sigma = returns.std(axis=0, ddof=1) / math.sqrt(sim.dt)
    assert np.all(np.abs(sigma / SIGMA - 1) < 0.03), sigma


def test_jumps_occur_at_the_configured_rate_independently_per_symbol() -> None:
    p, jump_sigma = 0.01, 0.1
    sim = GBMSimulator(make_params(), seed=7, jump_prob=p, jump_sigma=jump_sigma)
    prices = np.vstack([[100.0, 100.0, 100.0], run(sim, STEPS)])
    returns = np.diff(np.log(prices), axis=0)
    # A diffusion move beyond 8 of its own standard deviations practically never happens.
    threshold = 8 * SIGMA * math.sqrt(sim.dt)
    jumped = np.abs(returns) > threshold
    # Share of jumps bigger than the threshold, per symbol: P(|N(0, jump_sigma)| > threshold).
    seen = [math.erfc(x / (jump_sigma * math.sqrt(2))) for x in threshold]
    expected = STEPS * p * sum(seen)  # about 580 of 600 jumps, Poisson error about 24
    assert abs(jumped.sum() - expected) < 0.15 * expected
    together = int((jumped[:, 0] & jumped[:, 1]).sum())
    assert together < 20  # independent: about STEPS * p^2 = 2; a shared jump would give ~200


def test_prices_stay_positive_even_when_wild() -> None:
    sim = GBMSimulator(make_params(sigma=np.array([3.0, 3.0, 3.0])), seed=1, jump_sigma=0.5)
    prices = run(sim, 5_000)
    assert np.all(np.isfinite(prices))
    assert np.all(prices > 0)


def test_the_same_seed_gives_the_same_path() -> None:
    first = run(GBMSimulator(make_params(), seed=5), 100)
    again = run(GBMSimulator(make_params(), seed=5), 100)
    other = run(GBMSimulator(make_params(), seed=6), 100)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_ticks_are_stamped_now_in_utc_with_a_positive_size() -> None:
    source: MarketDataSource = GBMSimulator(make_params(), seed=1)  # mypy checks the protocol
    assert (source.name, source.running) == ("simulator", False)
    assert isinstance(source, GBMSimulator)
    ticks = source.step()
    assert [t.symbol for t in ticks] == ["A", "B", "C"]
    assert all(t.ts.tzinfo is UTC and t.size >= 1 for t in ticks)


def test_an_added_symbol_gets_sector_correlations_and_a_removed_one_stops_ticking() -> None:
    params = make_params(("A", "B"), np.array([[1.0, 0.5], [0.5, 1.0]]), np.array([0.2, 0.3]))
    sectors: dict[str, str | None] = {"A": "Tech", "B": "Energy", "C": "Tech"}
    sim = GBMSimulator(params, seed=1, sectors=sectors)
    d = GBMDefaults()
    sim.add_symbol("c")
    sim.add_symbol("D")  # sector unknown
    sim.add_symbol("A")  # already there: nothing changes
    now = sim.params
    assert now.symbols == ("A", "B", "C", "D")
    assert now.corr[2, :2].tolist() == [d.within_sector, d.across_sectors]
    assert now.corr[3, :3].tolist() == [0.0, 0.0, 0.0]
    assert (now.last_prices[2], now.sigma[3]) == (d.price, d.sigma)
    assert {t.symbol for t in sim.step()} == {"A", "B", "C", "D"}
    sim.remove_symbol("A")
    sim.remove_symbol("A")  # twice is fine
    assert sim.symbols == frozenset({"B", "C", "D"})
    assert {t.symbol for t in sim.step()} == {"B", "C", "D"}
    assert sim.params.corr[0, 1] == d.across_sectors  # B-C kept


def test_an_added_symbol_inconsistent_with_the_others_is_shrunk_not_the_others() -> None:
    anti = np.array([[1.0, -0.9], [-0.9, 1.0]])
    sectors: dict[str, str | None] = {"A": "Tech", "B": "Tech", "C": "Tech"}
    sim = GBMSimulator(make_params(("A", "B"), anti, np.array([0.2, 0.2])), sectors=sectors)
    sim.add_symbol("C")  # 0.6 with two stocks that are -0.9 to each other is impossible
    corr = sim.params.corr  # GBMParams checks it is positive definite
    assert corr[0, 1] == -0.9
    assert corr[2, 0] == corr[2, 1]
    assert 0 < corr[2, 0] < GBMDefaults().within_sector


def test_start_delivers_ticks_until_stop_and_leaves_no_task_behind() -> None:
    async def scenario() -> tuple[GBMSimulator, list[Tick], int, list[str]]:
        sim = GBMSimulator(make_params(), interval_s=0.01, seed=3)
        ticks: list[Tick] = []
        await sim.start(ticks.append)
        assert sim.running
        with pytest.raises(RuntimeError, match="already running"):
            await sim.start(ticks.append)
        await asyncio.sleep(0.2)
        await sim.stop()
        at_stop = len(ticks)
        await asyncio.sleep(0.05)
        return sim, ticks, at_stop, [t.get_name() for t in asyncio.all_tasks()]

    sim, ticks, at_stop, tasks = asyncio.run(scenario())
    assert not sim.running
    assert "gbm-simulator" not in tasks
    assert len(ticks) == at_stop  # nothing after stop
    assert at_stop >= 3 * 10  # about 20 steps of 3 symbols in 0.2 s; slack for a busy machine
    stamps = [t.ts for t in ticks[::3]]
    assert stamps == sorted(stamps)


def test_stop_is_safe_before_start_and_a_stopped_simulator_can_start_again() -> None:
    async def scenario() -> int:
        sim = GBMSimulator(make_params(), interval_s=0.01, seed=3)
        await sim.stop()
        ticks: list[Tick] = []
        await sim.start(ticks.append)
        await sim.stop()
        await sim.start(ticks.append)
        await asyncio.sleep(0.03)
        await sim.stop()
        return len(ticks)

    assert asyncio.run(scenario()) >= 3
