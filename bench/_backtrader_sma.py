"""SMA crossover in backtrader, the baseline of bench/backtest.py.

The same rule as ours: enter when SMA(fast) crosses above SMA(slow), exit on
the cross below; the market order placed on bar t's close fills at bar t+1's
open (backtrader's default); commission a fraction of traded value; one
Cerebro (one broker, its own cash) per symbol, run one after the other.

Sizing differs, and only sizing: backtrader sizes when the order is placed,
from the signal bar's close, so the order is for 98 % of (cash / (close x
(1 + fee))) shares, fractional (a CommInfo that allows them): the margin
left keeps a gap up at the open from refusing it. The benchmark compares
speed and the bars trades enter and exit on, not equity.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import pandas as pd


@dataclass(frozen=True)
class BacktraderRun:
    seconds: float  # cerebro.run() only, summed over symbols
    setup_seconds: float  # building the feeds and engines
    final_value: dict[str, float]
    trades: dict[str, list[tuple[int, int]]]  # (entry bar, exit bar or -1 if still open)


class _Fractional(bt.CommInfoBase):  # type: ignore[misc]
    params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_PERC), ("percabs", True))

    def getsize(self, price: float, cash: float) -> float:
        return float(self.p.leverage * (cash / price))


class _SmaCross(bt.Strategy):  # type: ignore[misc]
    params = (("fast", 10), ("slow", 50), ("fee", 0.001))

    def __init__(self) -> None:
        fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.indicators.CrossOver(fast, slow)
        self.round_trips: list[tuple[int, int]] = []
        self._entry: int | None = None

    def next(self) -> None:
        if not self.position and self.cross[0] > 0:
            cash = self.broker.getcash()
            # 98 %: the fill is at the next open, which may gap above this close
            self.buy(size=0.98 * cash / (self.data.close[0] * (1 + self.p.fee)))
        elif self.position and self.cross[0] < 0:
            self.close()

    def notify_order(self, order: Any) -> None:
        if order.status != order.Completed:
            return
        bar = len(self) - 1  # filled at this bar's open
        if order.isbuy():
            self._entry = bar
        elif self._entry is not None:
            self.round_trips.append((self._entry, bar))
            self._entry = None

    def stop(self) -> None:
        if self._entry is not None:
            self.round_trips.append((self._entry, -1))


def run_backtrader_sma(
    open_: pd.DataFrame,
    high: pd.DataFrame,
    low: pd.DataFrame,
    close: pd.DataFrame,
    volume: pd.DataFrame | None,
    *,
    fast: int = 10,
    slow: int = 50,
    fee: float = 0.001,
    cash_per_symbol: float = 10_000.0,
) -> BacktraderRun:
    """Run each column of the frames (dates x symbols, no NaN) in its own Cerebro."""
    seconds = setup = 0.0
    finals: dict[str, float] = {}
    trades: dict[str, list[tuple[int, int]]] = {}
    for symbol in close.columns:
        started = time.perf_counter()
        frame = pd.DataFrame(
            {
                "open": open_[symbol],
                "high": high[symbol],
                "low": low[symbol],
                "close": close[symbol],
                "volume": volume[symbol] if volume is not None else 0.0,
                "openinterest": 0.0,
            }
        )
        cerebro = bt.Cerebro(stdstats=False, preload=True, runonce=True)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame))
        cerebro.addstrategy(_SmaCross, fast=fast, slow=slow, fee=fee)
        cerebro.broker.setcash(cash_per_symbol)
        cerebro.broker.addcommissioninfo(_Fractional(commission=fee))
        cerebro.broker.set_checksubmit(False)
        setup += time.perf_counter() - started
        started = time.perf_counter()
        (strategy,) = cerebro.run()
        seconds += time.perf_counter() - started
        finals[symbol] = float(cerebro.broker.getvalue())
        trades[symbol] = list(strategy.round_trips)
    return BacktraderRun(seconds, setup, finals, trades)


def trades_match(
    ours: dict[str, list[tuple[int, int]]], theirs: dict[str, list[tuple[int, int]]]
) -> tuple[int, int]:
    """(symbols whose trade bars are identical, symbols compared)."""
    common = [s for s in theirs if s in ours]
    return sum(sorted(ours[s]) == sorted(theirs[s]) for s in common), len(common)
