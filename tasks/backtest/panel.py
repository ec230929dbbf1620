"""`PricePanel`: the bars a backtest sees, as time x symbol float64 arrays.

A panel is ragged by nature: symbols list and delist inside the window and
have gaps. Missing bars are NaN in every price array; nothing is filled in,
so a strategy never computes on a price that did not trade and the engine
never fills an order on one. `from_frame` takes the long frame that
`db.queries.bars.bars_frame` returns (or any frame with the same columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FRAME_COLUMNS = ("symbol", "ts", "open", "high", "low", "close")


@dataclass(frozen=True)
class PricePanel:
    """`open`, `high`, `low`, `close` are (bars, symbols), NaN where a symbol has no bar.

    `dates` are the union of every symbol's bar stamps (UTC, ascending).
    """

    dates: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.dates), len(self.symbols))
        for name in ("open", "high", "low", "close"):
            array = getattr(self, name)
            if array.shape != shape or array.dtype != np.float64:
                raise ValueError(
                    f"{name}: expected float64 {shape}, got {array.dtype} {array.shape}"
                )
        if not self.dates.is_monotonic_increasing or not self.dates.is_unique:
            raise ValueError("dates must be strictly increasing")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.dates), len(self.symbols)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, symbols: list[str] | None = None) -> PricePanel:
        """Pivot a long frame of bars (`FRAME_COLUMNS`) into a panel; `symbols` fixes the order."""
        missing = [c for c in FRAME_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"bar frame lacks {', '.join(missing)}")
        if frame.duplicated(["symbol", "ts"]).any():
            raise ValueError("bar frame holds a (symbol, ts) twice")
        order = symbols if symbols is not None else sorted(frame["symbol"].unique())
        dates = pd.DatetimeIndex(sorted(frame["ts"].unique()))
        if dates.tz is None:
            dates = dates.tz_localize("UTC")
        arrays = {}
        for name in ("open", "high", "low", "close"):
            wide = frame.pivot(index="ts", columns="symbol", values=name)
            wide.index = pd.DatetimeIndex(wide.index)
            if wide.index.tz is None:
                wide.index = wide.index.tz_localize("UTC")
            wide = wide.reindex(index=dates, columns=order)
            arrays[name] = np.ascontiguousarray(wide.to_numpy(dtype=np.float64))
        return cls(dates=dates, symbols=tuple(order), **arrays)

    def last_bars(self) -> np.ndarray:
        """Each symbol's last bar with a close (-1 for none): where its data ends."""
        valid = ~np.isnan(self.close)
        last = self.close.shape[0] - 1 - valid[::-1].argmax(axis=0)
        return np.where(valid.any(axis=0), last, -1).astype(np.int64)

    def last_close(self, s: int, t: int) -> float:
        """Symbol `s`'s newest close at or before bar `t` (NaN if none): a missing bar keeps
        the last close, as the engine marks positions."""
        column = self.close[: t + 1, s]
        known = np.flatnonzero(~np.isnan(column))
        return float(column[known[-1]]) if known.size else float("nan")

    def between(self, first: int, stop: int) -> PricePanel:
        """Bars `first` .. `stop - 1` (a walk-forward window), every symbol kept."""
        return PricePanel(
            dates=self.dates[first:stop],
            symbols=self.symbols,
            open=self.open[first:stop],
            high=self.high[first:stop],
            low=self.low[first:stop],
            close=self.close[first:stop],
        )

    def select(self, symbols: list[str]) -> PricePanel:
        index = [self.symbols.index(s) for s in symbols]
        return PricePanel(
            dates=self.dates,
            symbols=tuple(symbols),
            open=np.ascontiguousarray(self.open[:, index]),
            high=np.ascontiguousarray(self.high[:, index]),
            low=np.ascontiguousarray(self.low[:, index]),
            close=np.ascontiguousarray(self.close[:, index]),
        )
