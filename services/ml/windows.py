"""Training samples from stored bars: the engine's (price, size) windows and what came after.

A sample is the `window` bars of one symbol ending at bar `t` (close as the
price, volume as the size, raw values, as the realtime engine keeps them) and
the `horizon` closes after `t`. The features are the window alone; the
targets are built from the closes after it, never from anything inside it
but the last close `t` they are measured from. So a model's input holds no
label information, and two samples' label spans overlap only when their
ends are within `horizon` bars, which is what the splits' purge gap removes
(services/ml/splits.py).

Closes are raw (point in time: `adj_close` embeds later corporate actions,
docs/decisions/0003-point-in-time-bars.md), so a split shows as a jump. A
sample whose window or horizon holds a one-bar move beyond `MAX_BAR_MOVE`
(log) is dropped and counted: a 2:1 split is -69 %, no daily move of a large
stock in the shared data is near it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]

MAX_BAR_MOVE = float(np.log(1.4))  # |log return| of one bar above this: a split, not a trade

DOWN, FLAT, UP = 0, 1, 2
CLASSES = ("down", "flat", "up")


@dataclass(frozen=True)
class Samples:
    """Windows of every symbol, ordered by their last bar's time (then symbol).

    `x` is float32 `(n, window, 2)`: raw close and volume, oldest first, the
    input the ONNX models take. `future` is `(n, horizon + 1)` closes from the
    window's last bar on. `end` indexes `dates`, the bar each window ends at.
    """

    x: np.ndarray[Any, np.dtype[np.float32]]
    future: FloatArray
    end: IntArray
    symbol: IntArray
    dates: pd.DatetimeIndex
    symbols: tuple[str, ...]
    dropped_jumps: int

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def take(self, mask: np.ndarray[Any, np.dtype[np.bool_]]) -> Samples:
        return Samples(
            self.x[mask],
            self.future[mask],
            self.end[mask],
            self.symbol[mask],
            self.dates,
            self.symbols,
            self.dropped_jumps,
        )

    def ending_in(self, span: slice) -> Samples:
        """The samples whose window ends at a date index inside `span`."""
        start, stop, _ = span.indices(len(self.dates))
        return self.take((self.end >= start) & (self.end < stop))

    def forward_returns(self) -> FloatArray:
        """`(n, horizon)` one-bar log returns after the window: the forecaster's target."""
        return np.diff(np.log(self.future), axis=1)

    def window_returns(self) -> FloatArray:
        """`(n, window - 1)` one-bar log returns inside the window."""
        return np.diff(np.log(self.x[:, :, 0].astype(np.float64)), axis=1)


def samples_from_frame(
    frame: pd.DataFrame, *, window: int, horizon: int, stride: int = 1
) -> Samples:
    """Every complete `window + horizon` run of bars per symbol, one sample per `stride` bars.

    `frame` is `db.queries.bars.bars_frame`'s long frame (symbol, ts, close,
    volume, ...). Runs that cross a missing bar (NaN), a non-positive close or a
    split-sized jump are left out.
    """
    if window < 3 or horizon < 1 or stride < 1:
        raise ValueError(
            f"need window >= 3, horizon >= 1, stride >= 1; got {window}, {horizon}, {stride}"
        )
    close = frame.pivot(index="ts", columns="symbol", values="close").sort_index()
    volume = frame.pivot(index="ts", columns="symbol", values="volume").reindex_like(close)
    dates = pd.DatetimeIndex(close.index)
    symbols = tuple(str(s) for s in close.columns)
    prices = close.to_numpy(dtype=np.float64)
    sizes = volume.to_numpy(dtype=np.float64)
    span = window + horizon
    xs, futures, ends, syms = [], [], [], []
    dropped = 0
    for j in range(prices.shape[1]):
        p, v = prices[:, j], sizes[:, j]
        if p.shape[0] < span:
            continue
        runs_p = np.lib.stride_tricks.sliding_window_view(p, span)[::stride]
        runs_v = np.lib.stride_tricks.sliding_window_view(v, span)[::stride]
        ok = np.isfinite(runs_p).all(axis=1) & (runs_p > 0).all(axis=1)
        ok &= np.isfinite(runs_v[:, :window]).all(axis=1) & (runs_v[:, :window] >= 0).all(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            jumps = np.abs(np.diff(np.log(runs_p), axis=1)) > MAX_BAR_MOVE
        jump = jumps.any(axis=1) & ok
        dropped += int(jump.sum())
        ok &= ~jump
        if not ok.any():
            continue
        first_end = np.arange(runs_p.shape[0]) * stride + window - 1
        xs.append(np.stack([runs_p[ok, :window], runs_v[ok, :window]], axis=2))
        futures.append(runs_p[ok, window - 1 :])
        ends.append(first_end[ok])
        syms.append(np.full(int(ok.sum()), j, dtype=np.int64))
    if not xs:
        raise ValueError(
            f"no complete run of {span} bars ({window} window + {horizon} ahead) in "
            f"{len(symbols)} symbols over {len(dates)} bars"
        )
    end = np.concatenate(ends).astype(np.int64)
    symbol = np.concatenate(syms)
    order = np.lexsort((symbol, end))
    return Samples(
        x=np.concatenate(xs)[order].astype(np.float32),
        future=np.concatenate(futures)[order],
        end=end[order],
        symbol=symbol[order],
        dates=dates,
        symbols=symbols,
        dropped_jumps=dropped,
    )


def direction_labels(samples: Samples, *, threshold: float) -> IntArray:
    """`DOWN`/`FLAT`/`UP` by the log return from the window's last close to the horizon's.

    The bar between flat and a move is `threshold` times the window's own
    one-bar volatility scaled to the horizon (sqrt of time): a calm stock's
    1 % is a move, a wild one's is noise. The volatility comes from inside the
    window, so the threshold is known when the window ends; the return is not.
    """
    horizon = samples.future.shape[1] - 1
    ahead = np.log(samples.future[:, -1] / samples.future[:, 0])
    sigma = samples.window_returns().std(axis=1) * np.sqrt(horizon)
    bar = threshold * np.maximum(sigma, 1e-6)
    labels = np.full(len(samples), FLAT, dtype=np.int64)
    labels[ahead > bar] = UP
    labels[ahead < -bar] = DOWN
    return labels


def data_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of the bars a model learned from (symbol, ts, close, volume), order-free."""
    cols = frame[["symbol", "ts", "close", "volume"]].sort_values(["symbol", "ts"])
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(cols, index=False).to_numpy().tobytes())
    return digest.hexdigest()
