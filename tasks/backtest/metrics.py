"""Every metric of a backtest from one function over equity curves and trades.

`metrics_table` takes (bars, groups) equity and the trade records and
returns one array per `Metrics` field, vectorised over groups (a sweep has
thousands); `compute_metrics` is the one-group wrapper. Definitions:

* returns r_t = equity_t / equity_{t-1} - 1, with equity_{-1} = init_cash;
* total_return = final / init_cash - 1; cagr = (final / init_cash) ** (ppy / bars) - 1
  (-1 if the equity is gone);
* volatility = std(r, ddof=1) * sqrt(ppy); sharpe = mean(r) / std(r, ddof=1) * sqrt(ppy)
  (risk-free 0); sortino = mean(r) / sqrt(mean(min(r, 0)^2)) * sqrt(ppy) (vectorbt's);
* max_drawdown = min_t(equity_t / max(init_cash, equity_..t) - 1), a negative fraction;
  max_drawdown_duration = the longest run of bars below a previous peak;
  calmar = cagr / |max_drawdown|;
* closed trades only (an open trade is not a result yet): trades, win_rate (pnl > 0),
  profit_factor = gains / |losses|, expectancy = mean pnl; the trades still open on the
  last bar are counted apart, open_trades, with their P&L marked at that close, open_pnl,
  so that closed P&L (expectancy x trades) + open_pnl = final - init_cash: a return
  made by an open trade shows as such beside the closed trades' win rate;
* exposure = share of bars with any position (a closed trade holds from its entry
  bar to the bar before its exit, at least one bar; an open one to the end);
* turnover = traded notional (both fills of closed trades, the entry of open ones)
  / mean equity, per year (x ppy / bars).

Undefined values are NaN (a flat curve's Sharpe, the win rate of no trades),
and a profit factor without losses is inf: a number that pretends is worse.
People are shown neither: `metric_text` says "n/a" and "n/a (no losses)".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.backtest import Metrics
from tasks.backtest import records


def metrics_table(
    equity: np.ndarray,
    trades: np.ndarray,
    *,
    init_cash: float | np.ndarray,
    periods_per_year: int = 252,
) -> dict[str, np.ndarray]:
    """One array of length `groups` per field of `Metrics`; `trades["group"]` indexes groups."""
    eq = np.asarray(equity, dtype=np.float64)
    if eq.ndim == 1:
        eq = eq[:, None]
    n_bars, n_groups = eq.shape
    cash = np.broadcast_to(np.asarray(init_cash, dtype=np.float64), (n_groups,))
    ppy = float(periods_per_year)
    previous = np.vstack([cash[None, :], eq[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = eq / previous - 1.0
        final = eq[-1]
        growth = final / cash
        total_return = growth - 1.0
        cagr = np.where(growth > 0, np.power(np.maximum(growth, 0), ppy / n_bars) - 1.0, -1.0)
        mean = rets.mean(axis=0)
        std = rets.std(axis=0, ddof=1) if n_bars > 1 else np.full(n_groups, np.nan)
        volatility = std * np.sqrt(ppy)
        sharpe = np.where(std > 0, mean / std * np.sqrt(ppy), np.nan)
        downside = np.sqrt(np.mean(np.minimum(rets, 0.0) ** 2, axis=0))
        sortino = np.where(downside > 0, mean / downside * np.sqrt(ppy), np.nan)
        peaks = np.maximum.accumulate(np.vstack([cash[None, :], eq]), axis=0)[1:]
        drawdown = eq / peaks - 1.0
        max_drawdown = np.minimum(drawdown.min(axis=0), 0.0)
        calmar = np.where(max_drawdown < 0, cagr / np.abs(max_drawdown), np.nan)
    duration = _longest_underwater(eq < peaks)

    groups = trades["group"].astype(np.int64)
    closed = trades["exit_reason"] != records.OPEN
    pnl = trades["pnl"]
    count = np.bincount(groups[closed], minlength=n_groups)
    wins = np.bincount(groups[closed & (pnl > 0)], minlength=n_groups)
    gains = np.bincount(
        groups[closed], weights=np.where(pnl > 0, pnl, 0.0)[closed], minlength=n_groups
    )
    losses = -np.bincount(
        groups[closed], weights=np.where(pnl < 0, pnl, 0.0)[closed], minlength=n_groups
    )
    pnl_sum = np.bincount(groups[closed], weights=pnl[closed], minlength=n_groups)
    still_open = ~closed
    open_count = np.bincount(groups[still_open], minlength=n_groups)
    open_pnl = np.bincount(groups[still_open], weights=pnl[still_open], minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        win_rate = np.where(count > 0, wins / count, np.nan)
        profit_factor = np.where(losses > 0, gains / losses, np.where(gains > 0, np.inf, np.nan))
        expectancy = np.where(count > 0, pnl_sum / count, np.nan)

    notional = trades["qty"] * trades["entry_price"] + np.where(
        closed, trades["qty"] * trades["exit_price"], 0.0
    )
    traded = np.bincount(groups, weights=notional, minlength=n_groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        turnover = traded / eq.mean(axis=0) * ppy / n_bars

    return {
        "total_return": total_return,
        "cagr": cagr,
        "volatility": volatility,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_drawdown,
        "max_drawdown_duration": duration,
        "calmar": calmar,
        "win_rate": win_rate,
        "profit_factor": profit_factor,
        "expectancy": expectancy,
        "exposure": _exposure(trades, closed, n_bars, n_groups),
        "turnover": turnover,
        "trades": count.astype(np.int64),
        "open_trades": open_count.astype(np.int64),
        "open_pnl": open_pnl,
        "final_equity": final.copy(),
    }


def compute_metrics(
    equity: np.ndarray, trades: np.ndarray, *, init_cash: float, periods_per_year: int = 252
) -> Metrics:
    """The metrics of one curve; every trade is taken as this curve's."""
    one = trades.copy()
    one["group"] = 0
    curve = np.asarray(equity, dtype=np.float64).reshape(len(equity), -1)[:, :1]
    table = metrics_table(curve, one, init_cash=init_cash, periods_per_year=periods_per_year)
    return Metrics.model_validate({k: v[0].item() for k, v in table.items()})


def metrics_frame(
    equity: np.ndarray,
    trades: np.ndarray,
    *,
    init_cash: float | np.ndarray,
    periods_per_year: int = 252,
) -> pd.DataFrame:
    """`metrics_table` as a frame, one row per group (for ranking sweeps)."""
    return pd.DataFrame(
        metrics_table(equity, trades, init_cash=init_cash, periods_per_year=periods_per_year)
    )


def metric_text(name: str, value: float | str | None) -> str:
    """A metric as a person reads it: thousands separators, 4 decimals, and words where a
    number would mislead ("n/a (no losses)" for an infinite profit factor, "n/a" for NaN).

    Takes what `json_metrics` stores too ("inf", "nan" as strings)."""
    if value is None:
        return ""
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    try:
        number = float(value)
    except ValueError:
        return str(value)
    if math.isinf(number) and name == "profit_factor":
        return "n/a (no losses)" if number > 0 else "n/a"
    if not math.isfinite(number):
        return "n/a"
    return f"{number:,.4f}"


def _longest_underwater(under: np.ndarray) -> np.ndarray:
    """Per column, the longest run of consecutive True."""
    n_bars, n_cols = under.shape
    run = np.zeros(n_cols, dtype=np.int64)
    best = np.zeros(n_cols, dtype=np.int64)
    for t in range(n_bars):
        run = np.where(under[t], run + 1, 0)
        np.maximum(best, run, out=best)
    return best


def _exposure(trades: np.ndarray, closed: np.ndarray, n_bars: int, n_groups: int) -> np.ndarray:
    held = np.zeros((n_bars + 1, n_groups), dtype=np.int64)
    start = trades["entry_bar"].astype(np.int64)
    stop = np.where(closed, np.maximum(trades["exit_bar"], start + 1), n_bars).astype(np.int64)
    groups = trades["group"].astype(np.int64)
    np.add.at(held, (start, groups), 1)
    np.add.at(held, (np.minimum(stop, n_bars), groups), -1)
    in_market = np.cumsum(held[:-1], axis=0) > 0
    return in_market.mean(axis=0) if n_bars else np.full(n_groups, np.nan)
