"""Simulator parameters: estimated point in time from the real sample, or assumed by sector."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from models.market import Bar
from realtime.sources.gbm_params import (
    GBMDefaults,
    GBMParams,
    estimate_gbm_params,
    nearest_correlation,
    params_from_closes,
    sector_params,
)
from realtime.sources.simulator import GBMSimulator
from tasks.import_bars import import_bar_file
from tasks.import_instruments import import_instrument_file
from tests.conftest import SAMPLE_DATA
from tests.factories import bar_row, write_bar_csv

BARS = SAMPLE_DATA / "sp500_daily_sample.csv.gz"
SECTORS = SAMPLE_DATA / "sp500_sectors_sample.csv"
SYMBOLS = sorted(pd.read_csv(BARS, usecols=["symbol"])["symbol"].unique())


@pytest.fixture
def sample(session: Session) -> Session:
    import_instrument_file(session, SECTORS)
    import_bar_file(session, BARS)
    return session


def _close_on(symbol: str, day: str) -> float:
    rows = pd.read_csv(BARS)
    return float(rows[(rows.symbol == symbol) & (rows.date == day)].close.iloc[0])


def _assert_valid_correlation(corr: np.ndarray) -> None:
    assert np.array_equal(corr, corr.T)
    assert np.allclose(np.diag(corr), 1.0)
    assert np.linalg.eigvalsh(corr)[0] > 0
    np.linalg.cholesky(corr)  # raises if not positive definite


def test_large_cap_volatilities_are_plausible_and_the_correlation_matrix_is_valid(
    sample: Session,
) -> None:
    params = estimate_gbm_params(sample, SYMBOLS, date(2020, 1, 10))
    assert params.symbols == tuple(SYMBOLS)
    assert np.all((params.sigma > 0.05) & (params.sigma < 1.0)), dict(
        zip(params.symbols, params.sigma, strict=True)
    )
    _assert_valid_correlation(params.corr)
    at = {s: i for i, s in enumerate(params.symbols)}
    assert params.corr[at["JPM"], at["BAC"]] > 0.6  # two big banks move together
    off_diagonal = params.corr[~np.eye(len(SYMBOLS), dtype=bool)]
    assert 0.1 < off_diagonal.mean() < 0.6


def test_an_earlier_as_of_gives_the_close_of_that_date_and_ignores_later_bars(
    sample: Session,
) -> None:
    as_of = date(2018, 6, 15)
    before = estimate_gbm_params(sample, ["AAPL", "MSFT", "XOM"], as_of)
    assert before.last_prices.tolist() == [
        _close_on(s, "2018-06-15") for s in ("AAPL", "MSFT", "XOM")
    ]
    # Deleting everything after as_of must not change anything estimated as of it.
    sample.execute(delete(Bar).where(Bar.ts > datetime(2018, 6, 15, tzinfo=UTC)))
    after = estimate_gbm_params(sample, ["AAPL", "MSFT", "XOM"], as_of)
    for field in ("last_prices", "mu", "sigma", "corr"):
        assert np.allclose(getattr(before, field), getattr(after, field)), field


def test_a_daily_close_is_unknown_until_its_day_has_ended(sample: Session) -> None:
    intraday = datetime(2018, 6, 15, 15, 0, tzinfo=UTC)
    params = estimate_gbm_params(sample, ["AAPL"], intraday)
    assert params.last_prices.tolist() == [_close_on("AAPL", "2018-06-14")]


def test_without_bars_every_symbol_gets_the_sector_prior(session: Session) -> None:
    import_instrument_file(session, SECTORS)
    params = estimate_gbm_params(session, ["AAPL", "MSFT", "JPM", "NOSUCH"], date(2020, 1, 10))
    d = GBMDefaults()
    assert params.last_prices.tolist() == [d.price] * 4
    assert params.sigma.tolist() == [d.sigma] * 4
    assert params.mu.tolist() == [d.mu] * 4
    assert params.corr[0, 1] == d.within_sector  # AAPL and MSFT: Information Technology
    assert params.corr[0, 2] == d.across_sectors  # AAPL and JPM
    assert params.corr[3, :3].tolist() == [d.across_sectors] * 3  # unknown sector: market only


def test_a_short_history_falls_back_for_that_symbol_only(session: Session, tmp_path: Path) -> None:
    days = pd.bdate_range("2020-01-01", periods=60)
    rng = np.random.default_rng(3)
    long_path = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 60)))
    rows = [
        bar_row(d.date().isoformat(), "LONG", *[f"{p:.4f}"] * 4)
        for d, p in zip(days, long_path, strict=True)
    ]
    rows += [bar_row(d.date().isoformat(), "SHORT", "20", "20", "20", "20") for d in days[-15:]]
    import_bar_file(session, write_bar_csv(tmp_path / "bars.csv", rows))
    params = estimate_gbm_params(session, ["LONG", "SHORT"], days[-1].date())
    assert params.sigma[1] == GBMDefaults().sigma  # 14 returns are too few
    assert params.last_prices[1] == 20.0  # but its last close is known
    assert 0.2 < params.sigma[0] < 0.5  # 2 % a day is about 32 % a year
    assert params.corr[0, 1] == GBMDefaults().across_sectors


def test_correlations_of_a_ragged_panel_use_the_overlapping_dates() -> None:
    rng = np.random.default_rng(7)
    z = rng.standard_normal((400, 2))
    returns = np.column_stack([z[:, 0], 0.7 * z[:, 0] + np.sqrt(1 - 0.49) * z[:, 1]]) * 0.01
    closes = 100 * np.exp(np.cumsum(np.vstack([np.zeros((1, 2)), returns]), axis=0))
    closes[:250, 1] = np.nan  # the second symbol listed late: 150 overlapping returns
    closes[300, 0] = np.nan  # and the first has a hole
    params = params_from_closes(closes, sector_params(["A", "B"], {}))
    assert abs(params.corr[0, 1] - 0.7) < 0.1
    assert params.last_prices.tolist() == closes[-1].tolist()


def test_the_repair_makes_an_inconsistent_matrix_positive_definite() -> None:
    broken = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(broken)[0] < 0
    with pytest.raises(ValueError, match="not positive definite"):
        GBMParams(("A", "B", "C"), np.ones(3), np.zeros(3), np.ones(3), broken)
    repaired = nearest_correlation(broken)
    _assert_valid_correlation(repaired)
    assert np.all(np.sign(repaired) == np.sign(broken))  # close: same structure, pulled inwards
    GBMParams(("A", "B", "C"), np.ones(3), np.zeros(3), np.ones(3), repaired)


def test_a_valid_matrix_passes_the_repair_unchanged() -> None:
    good = np.array([[1.0, 0.8, 0.3], [0.8, 1.0, -0.2], [0.3, -0.2, 1.0]])
    assert np.array_equal(nearest_correlation(good), good)


def test_sector_defaults_refuse_a_block_structure_that_could_break_positive_definiteness() -> None:
    with pytest.raises(ValueError, match="across_sectors"):
        GBMDefaults(within_sector=0.2, across_sectors=0.5)


def test_a_simulator_from_the_database_starts_at_the_last_closes(sample: Session) -> None:
    sim = GBMSimulator.from_database(sample, ["AAPL", "KO"], date(2018, 6, 15), seed=1)
    assert sim.params.last_prices.tolist() == [_close_on(s, "2018-06-15") for s in ("AAPL", "KO")]
    sim.add_symbol("MSFT")  # sector known from the instruments table: same as AAPL
    assert sim.params.corr[2, 0] == GBMDefaults().within_sector
