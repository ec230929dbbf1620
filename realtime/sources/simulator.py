"""The default market data source: correlated geometric Brownian motion with jumps.

Owns the price paths of the simulated symbols and the asyncio task that steps
them. Each step every symbol moves by

    log(S'/S) = (mu - sigma^2 / 2) dt + sigma sqrt(dt) (L z) + J

with z ~ N(0, I), L the Cholesky factor of the correlation matrix, and J a
jump: N(0, jump_sigma) with probability `jump_prob` per step and symbol,
independent across symbols, else 0. `step()` is synchronous and clock-free
apart from stamping ticks, so the statistics are testable without asyncio.

Time: a step happens every `interval_s` wall seconds and advances simulated
*trading* time by `interval_s * time_scale` seconds, where a trading year is
252 days of 6.5 hours. The default `time_scale` of 78 plays one trading day in
five wall minutes: a 25 %/yr stock moves about 0.06 % per half-second tick,
visible on a dashboard without looking like noise.

Not here: where the parameters come from (`gbm_params.py`), order books,
market hours, and persistence (simulated ticks are never written as bars).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, Self

import numpy as np
from sqlalchemy.orm import Session

from models.market_data import Tick
from realtime.background import BackgroundTask
from realtime.sources.base import TickHandler
from realtime.sources.gbm_params import (
    TRADING_DAYS_PER_YEAR,
    FloatArray,
    GBMDefaults,
    GBMParams,
    estimate_gbm_params,
    read_sectors,
)

logger = logging.getLogger(__name__)

TRADING_SECONDS_PER_YEAR = TRADING_DAYS_PER_YEAR * 6.5 * 3600
DEFAULT_TIME_SCALE = 78.0  # 6.5 h of trading per 5 wall minutes
PRICE_DECIMALS = 4  # quoted like the source data; the path itself keeps full precision
_MEDIAN_TRADE_SIZE = 200.0  # shares; sizes are log-normal around it


class GBMSimulator:
    """Correlated GBM prices for a changing set of symbols; a `MarketDataSource`.

    Call every method from the event loop's thread: `step`, `add_symbol` and
    `remove_symbol` mutate the same arrays without a lock. If `on_tick` raises
    (the contract says it must not), the task ends and `stop()` re-raises it.
    """

    name = "simulator"

    def __init__(
        self,
        params: GBMParams,
        *,
        interval_s: float = 0.5,
        time_scale: float = DEFAULT_TIME_SCALE,
        jump_prob: float = 5e-4,
        jump_sigma: float = 0.02,
        seed: int | None = None,
        sectors: dict[str, str | None] | None = None,
        defaults: GBMDefaults | None = None,
    ) -> None:
        if interval_s <= 0 or time_scale <= 0:
            raise ValueError(
                f"need interval_s > 0 and time_scale > 0, got {interval_s}, {time_scale}"
            )
        if not 0.0 <= jump_prob <= 1.0 or jump_sigma < 0:
            raise ValueError(
                f"need 0 <= jump_prob <= 1, jump_sigma >= 0, got {jump_prob}, {jump_sigma}"
            )
        self._interval_s = interval_s
        self._time_scale = time_scale
        self.jump_prob = jump_prob
        self.jump_sigma = jump_sigma
        self._rng = np.random.default_rng(seed)
        self._sectors = dict(sectors or {})
        self._defaults = defaults or GBMDefaults()
        self._symbols = list(params.symbols)
        self._prices = params.last_prices.copy()
        self._mu = params.mu.copy()
        self._sigma = params.sigma.copy()
        self._corr = params.corr.copy()
        self._refit()
        self._task = BackgroundTask("gbm-simulator")

    @classmethod
    def from_database(
        cls, session: Session, symbols: Sequence[str], as_of: datetime | date, **options: Any
    ) -> Self:
        """Parameters estimated as of `as_of`; every instrument's sector, for later adds."""
        params = estimate_gbm_params(session, symbols, as_of, defaults=options.get("defaults"))
        options.setdefault("sectors", read_sectors(session))
        return cls(params, **options)

    @property
    def interval_s(self) -> float:
        """Wall seconds between steps."""
        return self._interval_s

    @property
    def time_scale(self) -> float:
        """Simulated trading seconds per wall second."""
        return self._time_scale

    @property
    def dt(self) -> float:
        """Simulated time per step, in trading years."""
        return self._interval_s * self._time_scale / TRADING_SECONDS_PER_YEAR

    @property
    def params(self) -> GBMParams:
        """The current model, with the current prices as `last_prices`."""
        return GBMParams(tuple(self._symbols), self._prices, self._mu, self._sigma, self._corr)

    @property
    def running(self) -> bool:
        return self._task.running

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(self._symbols)

    def step(self) -> list[Tick]:
        """Advance every symbol one step; return one tick per symbol, stamped now."""
        n = len(self._symbols)
        if n == 0:
            return []
        # Draw every variate every step, so a seed gives the same path whatever jumps occur.
        shocks = self._chol @ self._rng.standard_normal(n)
        jumps = np.where(
            self._rng.random(n) < self.jump_prob, self._rng.normal(0.0, self.jump_sigma, n), 0.0
        )
        sizes = np.maximum(1.0, np.round(self._rng.lognormal(math.log(_MEDIAN_TRADE_SIZE), 1.0, n)))
        self._prices = self._prices * np.exp(self._drift + self._vol * shocks + jumps)
        now = datetime.now(UTC)
        return [
            Tick(symbol=s, price=round(float(p), PRICE_DECIMALS), size=float(q), ts=now)
            for s, p, q in zip(self._symbols, self._prices, sizes, strict=True)
        ]

    async def start(self, on_tick: TickHandler) -> None:
        self._task.start(self._run(on_tick))
        logger.info("simulator.started", extra={"symbols": len(self._symbols)})

    async def stop(self) -> None:
        await self._task.stop()
        logger.info("simulator.stopped")

    def add_symbol(self, symbol: str) -> None:
        """Start simulating `symbol` at the default price; a no-op if it is simulated already.

        Its correlation with the others is the sector prior when its sector is
        known, else 0. The existing block is kept exactly: if the prior row is
        inconsistent with it, the row is shrunk toward 0 until the matrix is
        positive definite.
        """
        symbol = symbol.strip().upper()
        if symbol in self._symbols:
            return
        d = self._defaults
        sector = self._sectors.get(symbol)
        row = np.array(
            [
                0.0 if sector is None else d.correlation(sector, self._sectors.get(s))
                for s in self._symbols
            ]
        )
        row = _shrink_to_fit(self._chol, row)
        n = len(self._symbols)
        corr = np.eye(n + 1)
        corr[:n, :n] = self._corr
        corr[n, :n] = corr[:n, n] = row
        self._symbols.append(symbol)
        self._prices = np.append(self._prices, d.price)
        self._mu = np.append(self._mu, d.mu)
        self._sigma = np.append(self._sigma, d.sigma)
        self._corr = corr
        self._refit()

    def remove_symbol(self, symbol: str) -> None:
        """Stop simulating `symbol`; a no-op if it is not simulated."""
        symbol = symbol.strip().upper()
        if symbol not in self._symbols:
            return
        i = self._symbols.index(symbol)
        del self._symbols[i]
        self._prices = np.delete(self._prices, i)
        self._mu = np.delete(self._mu, i)
        self._sigma = np.delete(self._sigma, i)
        self._corr = np.delete(np.delete(self._corr, i, axis=0), i, axis=1)
        self._refit()

    def _refit(self) -> None:
        """Recompute what each step uses from mu, sigma and corr."""
        self._chol: FloatArray = np.linalg.cholesky(self._corr).astype(np.float64)
        self._drift: FloatArray = (self._mu - self._sigma**2 / 2) * self.dt
        self._vol: FloatArray = self._sigma * math.sqrt(self.dt)

    async def _run(self, on_tick: TickHandler) -> None:
        """Step on a fixed schedule of loop time, so slow steps don't accumulate drift.

        When a step overruns by more than one interval (a stalled loop), the
        schedule restarts from now instead of firing the missed steps at once.
        """
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            for tick in self.step():
                on_tick(tick)
            due += self.interval_s
            wait = due - loop.time()
            if wait < -self.interval_s:
                due, wait = loop.time(), 0.0
            await asyncio.sleep(max(wait, 0.0))


def _shrink_to_fit(chol: FloatArray, row: FloatArray, margin: float = 1e-3) -> FloatArray:
    """Scale `row` so that [[C, row], [row, 1]] stays positive definite, C = chol chol^T.

    The extended matrix is positive definite iff |chol^-1 row| < 1 (its Schur
    complement 1 - |w|^2 is positive), so a row that is too strong is scaled down.
    """
    if row.size == 0:
        return row
    w = np.linalg.solve(chol, row)
    norm2 = float(w @ w)
    limit = 1.0 - margin
    return row if norm2 < limit else row * math.sqrt(limit / norm2)
