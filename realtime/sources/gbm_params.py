"""The inputs of the correlated GBM simulator: estimated point in time, or assumed by sector.

Owns `GBMParams` (what the simulator needs per symbol and across symbols),
estimating it from the daily closes known at `as_of`, the sector-block
fallback used when history is missing, and the repair of a correlation matrix
that is not positive definite. The estimation core (`params_from_closes`,
`nearest_correlation`) is pure numpy; only `estimate_gbm_params` and
`read_sectors` touch the database, and only to read.

Deliberately not here: simulating prices (`simulator.py`), intraday
seasonality, fat tails (the simulator adds jumps), and shrinkage of the drift.
A one-year mean return has a standard error about equal to the volatility
itself, so the estimated `mu` is mostly noise; it is kept because a simulator
that reproduces last year's trend is what a demo user expects, not a forecast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.bars import bars_as_of
from models.enums import Timeframe
from models.market import BarOut, Instrument

FloatArray = npt.NDArray[np.float64]

TRADING_DAYS_PER_YEAR = 252
MIN_RETURNS = 20
"""Fewer daily returns than this (per symbol, or per pair of overlapping dates): no estimate."""
MIN_EIGENVALUE = 1e-6
"""Floor of the repaired spectrum: keeps the Cholesky factor well conditioned."""


@dataclass(frozen=True)
class GBMDefaults:
    """What we assume where history says nothing: a generic large-cap stock.

    Within a sector stocks move together more than across sectors; 0.6 and
    0.25 are typical of daily S&P 500 returns. A symbol with an unknown sector
    still shares the market factor, so it gets `across_sectors` with everyone.
    """

    mu: float = 0.05
    sigma: float = 0.25
    price: float = 100.0
    within_sector: float = 0.6
    across_sectors: float = 0.25

    def __post_init__(self) -> None:
        # 0 <= across <= within < 1 makes the block matrix positive definite by construction.
        if not 0.0 <= self.across_sectors <= self.within_sector < 1.0:
            raise ValueError(
                f"need 0 <= across_sectors ({self.across_sectors}) <= within_sector "
                f"({self.within_sector}) < 1"
            )
        if self.sigma < 0 or self.price <= 0:
            raise ValueError(f"need sigma >= 0 and price > 0, got {self.sigma}, {self.price}")

    def correlation(self, a: str | None, b: str | None) -> float:
        """Assumed correlation of two distinct symbols in sectors `a` and `b` (None: unknown)."""
        return self.within_sector if a is not None and a == b else self.across_sectors


@dataclass(frozen=True, eq=False)
class GBMParams:
    """Per-symbol start price, drift and volatility, and their correlation.

    `mu` is the annual drift of the price (E[S_t] = S_0 exp(mu t)); `sigma` the
    annual volatility of log returns; `corr` the correlation of the diffusion
    shocks, symmetric with unit diagonal and positive definite (checked here,
    so a simulator can always take its Cholesky factor). Arrays are copied and
    made read-only: the value cannot change under a running simulator.
    """

    symbols: tuple[str, ...]
    last_prices: FloatArray
    mu: FloatArray
    sigma: FloatArray
    corr: FloatArray

    def __post_init__(self) -> None:
        n = len(self.symbols)
        if len(set(self.symbols)) != n:
            raise ValueError(f"duplicate symbols in {self.symbols}")
        for name, shape in (
            ("last_prices", (n,)),
            ("mu", (n,)),
            ("sigma", (n,)),
            ("corr", (n, n)),
        ):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != shape or not np.all(np.isfinite(value)):
                raise ValueError(f"{name}: need finite values of shape {shape}, got {value!r}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        if np.any(self.last_prices <= 0) or np.any(self.sigma < 0):
            raise ValueError("prices must be positive and volatilities non-negative")
        if not np.allclose(self.corr, self.corr.T, atol=1e-12) or not np.allclose(
            np.diag(self.corr), 1.0, atol=1e-12
        ):
            raise ValueError("corr must be symmetric with a unit diagonal")
        if n and np.linalg.eigvalsh(self.corr)[0] <= 0:
            raise ValueError("corr is not positive definite; repair it with nearest_correlation")


def estimate_gbm_params(
    session: Session,
    symbols: Sequence[str],
    as_of: datetime | date,
    lookback_days: int = TRADING_DAYS_PER_YEAR,
    defaults: GBMDefaults | None = None,
) -> GBMParams:
    """Estimate from the last `lookback_days` daily returns known at `as_of`.

    Point in time: closes come from `bars_as_of`, so nothing after `as_of` is
    read and `last_prices` are the closes as of that date. Whatever the data
    cannot support falls back to the sector prior: a symbol's sigma and mu
    with fewer than `MIN_RETURNS` returns, a pair's correlation with fewer
    than `MIN_RETURNS` overlapping dates, a last price with no bar at all.
    """
    wanted = tuple(dict.fromkeys(s.strip().upper() for s in symbols))
    prior = sector_params(wanted, read_sectors(session, wanted), defaults)
    if not wanted:
        return prior
    bars = bars_as_of(session, wanted, as_of, lookback_days + 1, Timeframe.D1)
    return params_from_closes(_close_panel(bars, wanted), prior)


def sector_params(
    symbols: Sequence[str],
    sectors: Mapping[str, str | None],
    defaults: GBMDefaults | None = None,
) -> GBMParams:
    """The prior: default price, drift and volatility, block correlation by sector."""
    d = defaults or GBMDefaults()
    n = len(symbols)
    of = [sectors.get(s) for s in symbols]
    corr = np.array([[d.correlation(a, b) for b in of] for a in of], dtype=np.float64).reshape(n, n)
    np.fill_diagonal(corr, 1.0)
    return GBMParams(
        symbols=tuple(symbols),
        last_prices=np.full(n, d.price),
        mu=np.full(n, d.mu),
        sigma=np.full(n, d.sigma),
        corr=corr,
    )


def params_from_closes(closes: FloatArray, prior: GBMParams) -> GBMParams:
    """Estimate from a (dates x symbols) panel of closes, NaN where a symbol has no bar.

    Returns are log differences of consecutive panel rows, so a return exists
    only where both days have a close; a gap costs a return rather than
    inventing a two-day one that would distort the correlation with others.
    """
    returns = np.diff(np.log(closes), axis=0)
    valid = np.isfinite(returns)
    x = np.where(valid, returns, 0.0)
    counts = valid.sum(axis=0)
    enough = counts >= MIN_RETURNS
    mean = x.sum(axis=0) / np.maximum(counts, 1)
    squares = (np.where(valid, x - mean, 0.0) ** 2).sum(axis=0)
    sigma = np.sqrt(squares / np.maximum(counts - 1, 1) * TRADING_DAYS_PER_YEAR)
    sigma = np.where(enough, sigma, prior.sigma)
    # E[log return] = (mu - sigma^2 / 2) dt, so the price drift adds half the variance back.
    mu = np.where(enough, mean * TRADING_DAYS_PER_YEAR + sigma**2 / 2, prior.mu)
    estimated = _pairwise_correlation(x, valid)
    corr = np.where(np.isnan(estimated), prior.corr, estimated)
    np.fill_diagonal(corr, 1.0)
    return GBMParams(
        symbols=prior.symbols,
        last_prices=_last_finite(closes, prior.last_prices),
        mu=mu,
        sigma=sigma,
        corr=nearest_correlation(corr),
    )


def nearest_correlation(matrix: FloatArray, min_eigenvalue: float = MIN_EIGENVALUE) -> FloatArray:
    """A positive-definite correlation matrix close to `matrix` (eigenvalue clipping).

    Pairwise estimates on different overlaps need not be jointly consistent,
    so their matrix can have negative eigenvalues and no Cholesky factor.
    Clipping the spectrum at `min_eigenvalue` and rescaling to a unit diagonal
    (a congruence, which keeps it positive definite) is a one-pass
    approximation of Higham's nearest correlation matrix, good enough for a
    simulator; a matrix that is already well conditioned comes back unchanged.
    """
    sym = (np.asarray(matrix, dtype=np.float64) + np.asarray(matrix, dtype=np.float64).T) / 2
    if sym.shape[0] == 0:
        return sym
    values, vectors = np.linalg.eigh(sym)
    if values[0] >= min_eigenvalue:
        return sym
    clipped = (vectors * np.maximum(values, min_eigenvalue)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(clipped))
    repaired = clipped * scale[:, None] * scale[None, :]
    repaired = (repaired + repaired.T) / 2
    np.fill_diagonal(repaired, 1.0)
    return np.asarray(repaired, dtype=np.float64)


def read_sectors(session: Session, symbols: Sequence[str] | None = None) -> dict[str, str | None]:
    """Sector of each known instrument (all of them when `symbols` is None)."""
    stmt = select(Instrument.symbol, Instrument.sector)
    if symbols is not None:
        stmt = stmt.where(Instrument.symbol.in_(list(symbols)))
    return {symbol: sector for symbol, sector in session.execute(stmt)}


def _close_panel(bars: Sequence[BarOut], symbols: Sequence[str]) -> FloatArray:
    dates = sorted({b.ts for b in bars})
    row = {ts: i for i, ts in enumerate(dates)}
    col = {s: j for j, s in enumerate(symbols)}
    panel = np.full((len(dates), len(symbols)), np.nan)
    for b in bars:
        panel[row[b.ts], col[b.symbol]] = float(b.close)
    return panel


def _pairwise_correlation(x: FloatArray, valid: npt.NDArray[np.bool_]) -> FloatArray:
    """Pearson correlation of each pair on the dates both have; NaN where that is too few.

    Matrix products over the validity mask give every pair's overlap sums at
    once; `x` is zero where invalid, so `x.T @ x` only sums the overlap.
    """
    m = valid.astype(np.float64)
    n = m.T @ m
    s = x.T @ m  # s[i, j]: sum of symbol i's returns on dates j also has
    ss = (x * x).T @ m
    with np.errstate(divide="ignore", invalid="ignore"):
        cov = x.T @ x - s * s.T / n
        var_i = ss - s * s / n
        corr = cov / np.sqrt(var_i * var_i.T)
    usable = (n >= MIN_RETURNS) & (var_i > 0) & (var_i.T > 0)
    return np.where(usable, np.clip(corr, -1.0, 1.0), np.nan)


def _last_finite(closes: FloatArray, fallback: FloatArray) -> FloatArray:
    finite = np.isfinite(closes)
    if closes.shape[0] == 0:
        return fallback.copy()
    last_row = closes.shape[0] - 1 - np.argmax(finite[::-1], axis=0)
    last = closes[last_row, np.arange(closes.shape[1])]
    return np.where(finite.any(axis=0), last, fallback)
