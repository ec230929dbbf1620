"""SMA crossover in backtrader, the baseline of `bench/backtest.py`.

The rule is ours (and vectorbt's): SMA(fast) and SMA(slow) of close; enter long
when `CrossOver(fast, slow) > 0`, leave when it is `< 0`. The market order placed
on bar t's close fills at bar t+1's open (backtrader's default: no cheat-on-close,
no cheat-on-open); commission is `fee` times traded value. Each symbol runs in its
own Cerebro, so its own broker and cash; the Cerebros run one after the other and
`seconds` sums their `run()` calls (feed loading included, building excluded).

Sizing: all cash at the fill open, fractional shares. Backtrader sizes an order
when it is placed, from the signal close, and refuses a fill the cash does not
cover (`Margin`), so a fixed fraction of cash at the close either leaves cash idle
or loses entries to gaps up. Instead the buy asks for `_OVERSIZE` times what cash
buys at the signal close, and the broker's volume filler (`set_filler`, which sees
the real fill price) trims it to `cash / (open x (1 + fee))`; the strategy cancels
the unfilled rest at once. Submit-time checks are off (`set_checksubmit(False)`):
they would price the oversized order at the close and refuse it. The entry is then
exactly vectorbt's `size=inf` at the open, so equity matches too, unless the open
is below `1 / _OVERSIZE` of the signal close (a 1:10 split overnight), where the
whole request fills and cash is left over. A refused order raises.

Ties: when SMA(fast) equals SMA(slow) exactly (possible with 4-decimal prices),
backtrader's `math.fsum` averages give 0 or a few 1e-15 and `CrossOver` carries
the last non-zero difference, while vectorbt's running-sum averages give about
1e-13 of noise; the cross then lands one bar apart. On the shared S&P file this
moves one entry or exit by one bar in 5 of its 451 complete symbols (ED, EL, F,
FCX, GLW); none of the first 20.

Not here: data loading, vectorbt, timing tables (all in `bench/backtest.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import backtrader as bt
import pandas as pd

OPEN_AT_END = -1  # exit bar of a trade still open after the last bar
_OVERSIZE = 10.0  # buy request, in multiples of what cash buys at the signal close
_CASH_MARGIN = 1e-12  # keeps rounding from pushing the fill a cent past the cash


class BacktraderOrderError(RuntimeError):
    """Backtrader refused or dropped an order, so its trades are not the rule's."""


@dataclass(frozen=True, slots=True)
class BacktraderRun:
    seconds: float  # cerebro.run() only, summed over symbols
    setup_seconds: float  # building frames, feeds and Cerebros, summed over symbols
    final_value: dict[str, float]  # broker value after the last bar, per symbol
    # (entry bar, exit bar) as positions into the frames' index; exit OPEN_AT_END if open
    trades: dict[str, list[tuple[int, int]]]


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
    """Run every column (dates x symbols, complete, no NaN) in its own Cerebro."""
    frames = {"open": open_, "high": high, "low": low, "close": close}
    if volume is not None:
        frames["volume"] = volume
    _check_panel(frames)
    dates = pd.DatetimeIndex(close.index)
    index = dates.tz_localize(None) if dates.tz is not None else dates
    seconds = setup_seconds = 0.0
    final_value: dict[str, float] = {}
    trades: dict[str, list[tuple[int, int]]] = {}
    for symbol in close.columns:
        started = time.perf_counter()
        bars = pd.DataFrame({k: f[symbol].to_numpy() for k, f in frames.items()}, index=index)
        cerebro = _build_cerebro(bars, fast=fast, slow=slow, fee=fee, cash=cash_per_symbol)
        ready = time.perf_counter()
        (strategy,) = cerebro.run()
        seconds += time.perf_counter() - ready
        setup_seconds += ready - started
        if strategy.refused:
            raise BacktraderOrderError(f"{symbol}: orders refused at bars {strategy.refused}")
        final_value[symbol] = float(cerebro.broker.getvalue())
        trades[symbol] = strategy.round_trips
    return BacktraderRun(seconds, setup_seconds, final_value, trades)


class _SmaCross(bt.Strategy):  # type: ignore[misc]
    """Long on the up-cross, flat on the down-cross; records bars, not prices."""

    params = (("fast", 10), ("slow", 50), ("fee", 0.001))

    def __init__(self) -> None:
        fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.indicators.CrossOver(fast, slow)
        self.round_trips: list[tuple[int, int]] = []
        self.refused: list[int] = []
        self._entry: int | None = None

    def next(self) -> None:
        if not self.position:
            if self.cross[0] > 0:
                affordable = self.broker.getcash() / (self.data.close[0] * (1.0 + self.p.fee))
                self.buy(size=_OVERSIZE * affordable)
        elif self.cross[0] < 0:
            self.close()

    def notify_order(self, order: Any) -> None:
        if order.status == order.Partial:
            self.cancel(order)  # the filler spent the cash; a rest would buy crumbs later
        elif order.status in (order.Margin, order.Rejected, order.Expired):
            self.refused.append(len(self.data) - 1)

    def notify_trade(self, trade: Any) -> None:
        # Trade.baropen/barclose are len(data) at the fill, i.e. 1-based bars.
        if trade.justopened:
            self._entry = trade.baropen - 1
        elif trade.isclosed and self._entry is not None:
            self.round_trips.append((self._entry, trade.barclose - 1))
            self._entry = None

    def stop(self) -> None:
        if self._entry is not None:
            self.round_trips.append((self._entry, OPEN_AT_END))


class _AllCashFiller:
    """Broker filler: a buy fills what the cash buys at the fill price, commission paid.

    Called by `BackBroker._execute` only for real fills (never the submit check),
    with the execution price, i.e. the open of the bar after the signal.
    """

    def __init__(self, broker: Any, fee: float) -> None:
        self._broker = broker
        self._fee = fee

    def __call__(self, order: Any, price: float, ago: int) -> float:
        rest = abs(order.executed.remsize)
        if not order.isbuy():
            return float(rest)
        affordable = self._broker.getcash() / (price * (1.0 + self._fee)) * (1.0 - _CASH_MARGIN)
        return float(min(rest, affordable))


def _build_cerebro(bars: pd.DataFrame, *, fast: int, slow: int, fee: float, cash: float) -> Any:
    # No observers, analyzers or trade history: only the strategy's own records.
    cerebro = bt.Cerebro(stdstats=False, preload=True, runonce=True)
    # PandasDirectData walks itertuples(); PandasData reads each cell with .iloc,
    # which makes loading the bars cost as much as the backtest itself.
    feed = bt.feeds.PandasDirectData(
        dataname=bars,
        datetime=0,  # itertuples() puts the index first
        open=1 + _column(bars, "open"),
        high=1 + _column(bars, "high"),
        low=1 + _column(bars, "low"),
        close=1 + _column(bars, "close"),
        volume=1 + _column(bars, "volume") if "volume" in bars.columns else -1,
        openinterest=-1,
    )
    cerebro.adddata(feed)
    cerebro.addstrategy(_SmaCross, fast=fast, slow=slow, fee=fee)
    broker = cerebro.broker
    broker.setcash(cash)
    broker.setcommission(commission=fee)  # stock-like, fee as a fraction of value
    broker.set_checksubmit(False)
    broker.set_filler(_AllCashFiller(broker, fee))
    return cerebro


def _check_panel(frames: dict[str, pd.DataFrame]) -> None:
    close = frames["close"]
    if not isinstance(close.index, pd.DatetimeIndex) or not close.index.is_monotonic_increasing:
        raise ValueError("close: index must be an increasing DatetimeIndex")
    for name, frame in frames.items():
        if not (frame.index.equals(close.index) and frame.columns.equals(close.columns)):
            raise ValueError(f"{name}: index or columns differ from close")
        if frame.isna().to_numpy().any():
            raise ValueError(f"{name}: NaN in {list(frame.columns[frame.isna().any()])}")


def trades_match(
    ours: dict[str, list[tuple[int, int]]], theirs: dict[str, list[tuple[int, int]]]
) -> tuple[int, int]:
    """(symbols whose trade bars are identical, symbols compared).

    Compared is every symbol on either side; one missing on a side counts as a
    mismatch, so a dropped symbol cannot pass as a match.
    """
    symbols = ours.keys() | theirs.keys()
    same = sum(s in ours and s in theirs and sorted(ours[s]) == sorted(theirs[s]) for s in symbols)
    return same, len(symbols)


def _column(frame: pd.DataFrame, name: str) -> int:
    return int(list(frame.columns).index(name))
