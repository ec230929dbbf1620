"""`run_backtest`: signals and a config in, equity curves and trades out.

This module owns the layout of a run, not the order logic (kernel.py):
columns are parameter set x symbol, parameter-set major, and cash pools are
either one per parameter set (`shared_cash`) or one per column. Either way
a parameter set starts with `init_cash` in all: without shared cash it is
split equally among the symbols, so the two modes compare like for like.

A strategy that gives no short rules of its own is mirrored when shorting
is allowed: its exits open shorts and its entries cover them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.backtest import BacktestConfig, Direction, FillTiming, Metrics, SizingMode, Stops
from tasks.backtest import kernel, records
from tasks.backtest.metrics import compute_metrics, metrics_table
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import Signals

logger = logging.getLogger(__name__)

_SIZE_MODES = {
    SizingMode.SHARES: kernel.SIZE_SHARES,
    SizingMode.CASH: kernel.SIZE_CASH,
    SizingMode.EQUITY_FRACTION: kernel.SIZE_EQUITY_FRACTION,
}


@dataclass(frozen=True)
class BacktestResult:
    """Equity per cash pool at every close, and every trade, of one run.

    `equity` is (bars, pools); `set_equity()` sums the pools of each
    parameter set. `trades` has `records.TRADE_DTYPE`; a trade's parameter set
    is `col // n_symbols` and its symbol `panel.symbols[trade["symbol"]]`.
    """

    panel: PricePanel
    config: BacktestConfig
    n_sets: int
    equity: np.ndarray
    trades: np.ndarray
    refused_orders: int

    @property
    def n_symbols(self) -> int:
        return len(self.panel.symbols)

    def set_equity(self) -> np.ndarray:
        """(bars, parameter sets): each set's whole portfolio."""
        if self.config.shared_cash:
            return self.equity
        summed: np.ndarray = self.equity.reshape(-1, self.n_sets, self.n_symbols).sum(axis=2)
        return summed

    def set_trades(self) -> np.ndarray:
        """The trades with `group` rewritten to the parameter set, for per-set metrics."""
        out = self.trades.copy()
        out["group"] = out["col"] // self.n_symbols
        return out

    def metrics_table(self) -> pd.DataFrame:
        """One row of `Metrics` per parameter set."""
        table = metrics_table(
            self.set_equity(),
            self.set_trades(),
            init_cash=self.config.init_cash,
            periods_per_year=self.config.periods_per_year,
        )
        return pd.DataFrame(table)

    def metrics(self, param_set: int = 0) -> Metrics:
        trades = self.set_trades()
        return compute_metrics(
            self.set_equity()[:, param_set],
            trades[trades["group"] == param_set],
            init_cash=self.config.init_cash,
            periods_per_year=self.config.periods_per_year,
        )

    def trades_frame(self) -> pd.DataFrame:
        """Trades with symbols, dates and exit reasons spelled out."""
        t = self.trades
        dates = self.panel.dates
        return pd.DataFrame(
            {
                "param_set": t["col"] // self.n_symbols,
                "symbol": np.asarray(self.panel.symbols, dtype=object)[t["symbol"]],
                "direction": np.where(t["direction"] > 0, "long", "short"),
                "entry_ts": dates[t["entry_bar"]],
                "entry_price": t["entry_price"],
                "exit_ts": dates[t["exit_bar"]],
                "exit_price": t["exit_price"],
                "qty": t["qty"],
                "fees": t["entry_fees"] + t["exit_fees"],
                "pnl": t["pnl"],
                "return_pct": t["ret"],
                "exit_reason": [records.EXIT_REASONS[r].value for r in t["exit_reason"]],
            }
        )


def run_backtest(
    panel: PricePanel,
    signals: Signals,
    config: BacktestConfig,
    *,
    set_stops: Sequence[Stops] | None = None,
) -> BacktestResult:
    """Simulate `signals` (columns: parameter sets x the panel's symbols) on `panel`.

    `set_stops` gives each parameter set its own stops (a sweep over stop
    levels); without it every set uses `config.stops`.
    """
    n_bars, n_symbols = panel.shape
    if signals.entries.shape[0] != n_bars or signals.columns % max(n_symbols, 1):
        raise ValueError(
            f"signals {signals.entries.shape} do not fit a panel of {n_bars} bars x "
            f"{n_symbols} symbols"
        )
    n_sets = signals.columns // n_symbols
    if set_stops is not None and len(set_stops) != n_sets:
        raise ValueError(f"{len(set_stops)} stop settings for {n_sets} parameter sets")
    if config.fill is FillTiming.SIGNAL_CLOSE:
        logger.warning(
            "backtest.same_bar_fill",
            extra={"detail": "orders fill at the close that produced their signal (look-ahead)"},
        )
    n_cols = signals.columns
    col_symbol = np.tile(np.arange(n_symbols, dtype=np.int64), n_sets)
    if config.shared_cash:
        group_start = np.arange(0, n_cols + 1, n_symbols, dtype=np.int64)
        init_cash = np.full(n_sets, config.init_cash)
    else:
        group_start = np.arange(n_cols + 1, dtype=np.int64)
        init_cash = np.full(n_cols, config.init_cash / n_symbols)
    short_entries, short_exits = _short_signals(signals, config.direction)
    sl, tp, trail = _stop_columns(set_stops or [config.stops] * n_sets, n_symbols)
    equity = np.empty((n_bars, len(init_cash)))
    capacity = _trade_capacity(signals.entries, short_entries, config.direction, n_cols)
    tf = np.empty((capacity, kernel.N_TF))
    ti = np.empty((capacity, kernel.N_TI), dtype=np.int64)
    n_trades, refused = kernel.simulate(
        panel.open,
        panel.high,
        panel.low,
        panel.close,
        col_symbol,
        group_start,
        np.ascontiguousarray(signals.entries),
        np.ascontiguousarray(signals.exits),
        short_entries,
        short_exits,
        init_cash,
        panel.last_bars(),
        config.direction is not Direction.SHORT,
        config.direction is not Direction.LONG,
        _SIZE_MODES[config.sizing.mode],
        config.sizing.value,
        config.sizing.fractional,
        config.costs.fee_bps / 1e4,
        config.costs.fee_fixed,
        config.costs.slippage_bps / 1e4,
        sl,
        tp,
        trail,
        config.fill is FillTiming.SIGNAL_CLOSE,
        equity,
        tf,
        ti,
    )
    return BacktestResult(
        panel=panel,
        config=config,
        n_sets=n_sets,
        equity=equity,
        trades=_trade_records(tf[:n_trades], ti[:n_trades]),
        refused_orders=int(refused),
    )


def buy_and_hold(panel: PricePanel, config: BacktestConfig) -> BacktestResult:
    """The benchmark beside every result: equal cash per symbol, bought on each symbol's
    first bar's signal (so at its second bar's open, like any strategy), never sold; same
    costs, no stops, one shared pool."""
    n_bars, n_symbols = panel.shape
    entries = np.zeros((n_bars, n_symbols), dtype=np.bool_)
    valid = ~np.isnan(panel.close)
    first = np.where(valid.any(axis=0), valid.argmax(axis=0), -1)
    for s, t in enumerate(first):
        if t >= 0:
            entries[t, s] = True
    bench = config.model_copy(
        update={
            "sizing": config.sizing.model_copy(
                update={"mode": SizingMode.CASH, "value": config.init_cash / n_symbols}
            ),
            "stops": Stops(),
            "direction": Direction.LONG,
            "shared_cash": True,
            "fill": FillTiming.NEXT_OPEN,
            "allow_same_bar_fill": False,
        }
    )
    return run_backtest(panel, Signals(entries, np.zeros_like(entries)), bench)


def _short_signals(signals: Signals, direction: Direction) -> tuple[np.ndarray, np.ndarray]:
    if direction is Direction.LONG:
        # never read; zeros are calloc'd lazily, and one array layout means one compilation
        return np.zeros(signals.entries.shape, np.bool_), np.zeros(signals.entries.shape, np.bool_)
    if signals.short_entries is None and signals.short_exits is None:
        return np.ascontiguousarray(signals.exits), np.ascontiguousarray(signals.entries)
    none = np.zeros(signals.entries.shape, np.bool_)
    return (
        none if signals.short_entries is None else np.ascontiguousarray(signals.short_entries),
        none if signals.short_exits is None else np.ascontiguousarray(signals.short_exits),
    )


def _stop_columns(
    stops: Sequence[Stops], n_symbols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def column(name: str) -> np.ndarray:
        per_set = np.array(
            [math.nan if (v := getattr(s, name)) is None else float(v) for s in stops]
        )
        return np.repeat(per_set, n_symbols)

    return column("stop_loss"), column("take_profit"), column("trailing_stop")


def _trade_capacity(
    entries: np.ndarray, short_entries: np.ndarray, direction: Direction, n_cols: int
) -> int:
    """An upper bound on the trades: each opens on an entry signal (a reversal's too)."""
    bound = n_cols
    if direction is not Direction.SHORT:
        bound += int(np.count_nonzero(entries))
    if direction is not Direction.LONG:
        bound += int(np.count_nonzero(short_entries))
    return bound


def _trade_records(tf: np.ndarray, ti: np.ndarray) -> np.ndarray:
    out = np.empty(len(tf), dtype=records.TRADE_DTYPE)
    out["col"] = ti[:, kernel.TI_COL]
    out["group"] = ti[:, kernel.TI_GROUP]
    out["symbol"] = ti[:, kernel.TI_SYMBOL]
    out["direction"] = ti[:, kernel.TI_DIRECTION]
    out["entry_bar"] = ti[:, kernel.TI_ENTRY_BAR]
    out["exit_bar"] = ti[:, kernel.TI_EXIT_BAR]
    out["exit_reason"] = ti[:, kernel.TI_REASON]
    out["entry_price"] = tf[:, kernel.TF_ENTRY_PRICE]
    out["entry_fees"] = tf[:, kernel.TF_ENTRY_FEES]
    out["exit_price"] = tf[:, kernel.TF_EXIT_PRICE]
    out["exit_fees"] = tf[:, kernel.TF_EXIT_FEES]
    out["qty"] = tf[:, kernel.TF_QTY]
    out["pnl"] = tf[:, kernel.TF_PNL]
    out["ret"] = tf[:, kernel.TF_RET]
    order = np.lexsort((out["entry_bar"], out["col"]))
    return out[order]
