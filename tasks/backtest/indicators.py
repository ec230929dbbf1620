"""Indicators over (bars, columns) float64 arrays, defined as TA-Lib defines them.

Ragged columns: a column is computed over its own valid (non-NaN) rows only,
as if its NaN rows were not there. A 20-bar SMA of a symbol with a one-day
halt averages its last 20 traded bars, across the halt; an EMA carries its
state over the gap. Results are NaN on NaN rows and during warm-up (counted
in the column's valid bars). Every result at row t depends on rows <= t only.

Definitions (the k-th valid bar of a column counts from 1):

* `sma(x, window)`: the mean of the last `window` values; first at bar `window`.
* `ema(x, span)`: alpha = 2 / (span + 1), seeded at bar `span` with the SMA of
  the first `span` values, then `prev + alpha * (x - prev)` (TA-Lib's EMA in its
  default compatibility mode, no unstable period).
* `rsi(x, window)`: Wilder's: the first averages are the plain means of the
  first `window` changes, then `avg = (avg * (window - 1) + change) / window`;
  RSI = 100 * gain / (gain + loss), and 0 when gain + loss is within 1e-14 of
  zero (a flat stretch), as TA-Lib has it; first at bar `window + 1`.
* `macd(x, fast, slow, signal)`: `talib.MACD`, quirks included: both EMAs start
  at bar `slow`, the fast one seeded there with the SMA of the `fast` values
  ending at that bar (not at its own bar `fast`); macd = fast EMA - slow EMA;
  the signal line is the EMA(`signal`) of macd seeded with the SMA of its first
  `signal` values; hist = macd - signal. All three are NaN until the signal
  line exists (bar `slow + signal - 1`), as TA-Lib outputs them, and `fast >
  slow` is swapped, as TA-Lib does.
* `bollinger(x, window, k)`: mid = SMA; std is the population (ddof=0)
  deviation over the window, 0 where the variance is below 1e-14 (TA-Lib's
  zero test); upper, lower = mid +- k * std (`talib.BBANDS` with an SMA).
* `crossed_above(a, b)`: vectorbt's `crossed_above_nb` (wait=0), which
  `MA.ma_crossed_above` uses: True at row t when a > b at t, a <= b at the
  previous row, and a < b at some earlier row. A row where either side is NaN
  is skipped, not a reset: on series whose NaNs are a warm-up (or a listing and
  a delisting) this is vectorbt's answer exactly; across an interior gap
  vectorbt would forget the "was below", we carry it, as the indicators do.

Numerics. The SMA is a plain prefix-sum difference, vectorbt's arithmetic
exactly (see `_window_means`). The Bollinger sums are compensated prefix sums: numpy's
cumsum, plus the rounding error of each of its steps (recovered exactly by
TwoSum) summed alongside, so a window sum is good to a few ulps of its own
size however long the series. TA-Lib keeps an uncompensated running sum, so
agreement is ~1e-13 relative, not bit for bit. EMA, RSI and MACD are
recurrences: numba kernels, with TA-Lib's arithmetic in TA-Lib's order.

Not here: signals and strategy parameters (strategies.py), and indicators of
several inputs (ATR needs high, low and close).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt
from numba import njit

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

TA_EPSILON = 1e-14
"""TA-Lib's zero: a variance or an RSI denominator below it counts as 0."""


def sma(x: FloatArray, window: int) -> FloatArray:
    """Simple moving average of each column over its last `window` valid bars."""
    return sma_many(x, [window])[_period("window", window, 1)]


def sma_many(x: FloatArray, windows: Iterable[int]) -> dict[int, FloatArray]:
    """`{window: sma(x, window)}` for every distinct window, the prefix sums computed once.

    This is what makes a 4,851-pair crossover sweep cost 99 SMAs, not 9,702.
    """
    x = _columns(x)
    distinct = sorted({_period("window", w, 1) for w in windows})
    means = _on_valid_rows([x], lambda arrays, valid: _window_means(arrays[0], valid, distinct))
    return dict(zip(distinct, means, strict=True))


def ema(x: FloatArray, span: int) -> FloatArray:
    """Exponential moving average, alpha 2 / (span + 1), seeded with the SMA of `span` bars."""
    x = _columns(x)
    span = _period("span", span, 1)
    out: FloatArray = _ema_kernel(np.ascontiguousarray(x), span)
    return out


def rsi(x: FloatArray, window: int = 14) -> FloatArray:
    """Wilder's relative strength index, 0..100 (TA-Lib's RSI)."""
    x = _columns(x)
    window = _period("window", window, 2)
    out: FloatArray = _rsi_kernel(np.ascontiguousarray(x), window)
    return out


def macd(
    x: FloatArray, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(macd, signal, hist) exactly as `talib.MACD` computes them (see the module docstring)."""
    x = _columns(x)
    fast = _period("fast", fast, 2)
    slow = _period("slow", slow, 2)
    signal = _period("signal", signal, 1)
    if slow < fast:  # TA-Lib swaps them; so do we, or the two would disagree
        fast, slow = slow, fast
    line, trigger, hist = _macd_kernel(np.ascontiguousarray(x), fast, slow, signal)
    return line, trigger, hist


def bollinger(
    x: FloatArray, window: int = 20, k: float = 2.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(mid, upper, lower): the SMA and k population deviations either side (TA-Lib's BBANDS)."""
    x = _columns(x)
    window = _period("window", window, 1)
    if not np.isfinite(k) or k < 0:
        raise ValueError(f"k must be a finite number >= 0, got {k}")
    mid, std = _on_valid_rows([x], lambda arrays, valid: _window_std(arrays[0], valid, window))
    if k == 1.0:
        return mid, mid + std, mid - std
    width = std * k
    return mid, mid + width, mid - width


def crossed_above(a: FloatArray, b: FloatArray | float) -> BoolArray:
    """True where `a` crosses above `b` (vectorbt's definition; NaN rows skipped).

    `b` may be a scalar level (RSI 30) or an array of `a`'s shape.
    `crossed_above(b, a)` is "a crossed below b".
    """
    a = _columns(a)
    b_arr = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    crossed: list[BoolArray] = _on_valid_rows([a, b_arr], _crossings)
    return crossed[0]


# --- ragged columns ----------------------------------------------------------------------

# A compute function takes arrays whose columns each hold their valid rows as
# one contiguous run (NaN before it, NaN after it) and the mask of those rows
# (None when every row is valid), and returns results NaN/False off the mask.
Compute = Callable[[list[FloatArray], BoolArray | None], list[np.ndarray]]


def _on_valid_rows(arrays: list[FloatArray], compute: Compute) -> list[np.ndarray]:
    """Run `compute` as if each column's NaN rows were not there.

    A column whose valid rows are one run (complete, or a listing, or a
    delisting) is computed where it is: leading and trailing NaN rows do not
    change what the run computes. A column with an interior gap has its valid
    rows moved to the top first, then the results moved back. The arithmetic
    is the same either way, so a gap changes no bit of the other rows.
    """
    valid = ~np.isnan(arrays[0])
    for other in arrays[1:]:
        valid &= ~np.isnan(other)
    if valid.all():
        return compute(arrays, None)
    starts = valid[0].astype(np.int64) + np.count_nonzero(valid[1:] & ~valid[:-1], axis=0)
    gapped = starts > 1
    if not gapped.any():
        return compute(arrays, valid)
    keep = np.flatnonzero(~gapped)
    move = np.flatnonzero(gapped)
    moved_valid = valid[:, move]
    rank = np.cumsum(moved_valid, axis=0) - 1
    rows, cols = np.nonzero(moved_valid)
    dest = rank[rows, cols]
    packed = []
    for array in arrays:
        top = np.full((array.shape[0], move.size), np.nan)
        top[dest, cols] = array[:, move][rows, cols]
        packed.append(top)
    packed_valid = np.zeros_like(moved_valid)
    packed_valid[dest, cols] = True
    moved = compute(packed, packed_valid)
    kept = (
        compute([np.ascontiguousarray(a[:, keep]) for a in arrays], valid[:, keep])
        if keep.size
        else None
    )
    outputs = []
    for i, top in enumerate(moved):
        fill = False if top.dtype == np.bool_ else np.nan
        out = np.full(valid.shape, fill, dtype=top.dtype)
        back = np.full((valid.shape[0], move.size), fill, dtype=top.dtype)
        back[rows, cols] = top[dest, cols]
        out[:, move] = back
        if kept is not None:
            out[:, keep] = kept[i]
        outputs.append(out)
    return outputs


# --- windowed sums -----------------------------------------------------------------------


class _PrefixSums:
    """Sums of the first t values of each column, for every t, with their rounding errors.

    `hi` is numpy's sequential cumsum; `lo` accumulates the exact error of
    each of its additions (TwoSum), so `hi + lo` is the prefix sum to within
    eps^2 of its size and a window sum loses nothing to the prefix's size.
    """

    def __init__(self, y: FloatArray) -> None:
        n, c = y.shape
        self.hi = np.zeros((n + 1, c))
        np.cumsum(y, axis=0, out=self.hi[1:])
        before, after = self.hi[:-1], self.hi[1:]
        part = after - before
        error = (before - (after - part)) + (y - part)
        self.lo = np.zeros((n + 1, c))
        np.cumsum(error, axis=0, out=self.lo[1:])

    def window(self, w: int) -> FloatArray:
        """Sums of rows t-w+1 .. t, for t = w-1 .. n-1."""
        hi, lo = self.hi, self.lo
        out: FloatArray = (hi[w:] - hi[:-w]) + (lo[w:] - lo[:-w])
        return out


def _window_means(
    y: FloatArray, valid: BoolArray | None, windows: Sequence[int]
) -> list[FloatArray]:
    # Plain prefix sums (numpy's cumsum adds in row order), not the compensated ones:
    # this is vectorbt's (and pandas') rolling mean to the last bit. Crossovers compare two
    # means that are often equal in exact arithmetic (prices with 4 decimals), and there
    # only the same rounding gives the same trades; the error is ~1e-13 relative anyway.
    n = y.shape[0]
    prefix = np.zeros((n + 1, y.shape[1]))
    np.cumsum(y if valid is None else np.where(valid, y, 0.0), axis=0, out=prefix[1:])
    rank = None if valid is None else np.cumsum(valid, axis=0) - 1
    means = []
    for w in windows:
        out = np.full(y.shape, np.nan)
        if w <= n:
            out[w - 1 :] = (prefix[w:] - prefix[:-w]) / w
            if valid is not None and rank is not None:
                out[~valid | (rank < w - 1)] = np.nan
        means.append(out)
    return means


def _window_std(y: FloatArray, valid: BoolArray | None, w: int) -> list[FloatArray]:
    """[mid, std]: the mean as `sma` has it, the deviation from sums of y minus its first value.

    Centering on the column's first valid value (known from that bar on: no
    look-ahead) keeps the sum of squares near the variance's own size.
    """
    n = y.shape[0]
    mid = _window_means(y, valid, [w])[0]
    std = np.full(y.shape, np.nan)
    if w > n:
        return [mid, std]
    first = np.argmax(valid, axis=0) if valid is not None else np.zeros(y.shape[1], dtype=np.int64)
    ref = y[first, np.arange(y.shape[1])]
    centred = y - ref
    if valid is not None:
        centred = np.where(valid, centred, 0.0)
    s1 = _PrefixSums(centred).window(w)
    s2 = _PrefixSums(centred * centred).window(w)
    mean = s1 / w
    variance = s2 / w - mean * mean
    std[w - 1 :] = np.where(variance < TA_EPSILON, 0.0, np.sqrt(np.maximum(variance, 0.0)))
    std[np.isnan(mid)] = np.nan
    return [mid, std]


def _crossings(arrays: list[FloatArray], valid: BoolArray | None) -> list[BoolArray]:
    """vectorbt's crossed_above_nb on columns whose valid rows are one run.

    A NaN compares neither above nor below, so the rows before and after the
    run hold no state and start no crossing, which is what vectorbt's NaN
    reset amounts to when NaNs only bound the run.
    """
    a, b = arrays
    above = a > b
    below = a < b
    below_seen = np.logical_or.accumulate(below, axis=0)
    out = np.zeros(a.shape, dtype=np.bool_)
    np.logical_and(above[1:], ~above[:-1], out=out[1:])
    out[1:] &= below_seen[:-1]
    return [out]


# --- recurrences (numba) -----------------------------------------------------------------


@njit(cache=True, nogil=True)
def _ema_kernel(x: FloatArray, span: int) -> FloatArray:
    n, c = x.shape
    out = np.full((n, c), np.nan)
    k = 2.0 / (span + 1)
    for j in range(c):
        count = 0
        total = 0.0
        prev = 0.0
        for i in range(n):
            v = x[i, j]
            if np.isnan(v):
                continue
            count += 1
            if count < span:
                total += v
                continue
            if count == span:
                total += v
                prev = total / span
            else:
                prev = ((v - prev) * k) + prev
            out[i, j] = prev
    return out


@njit(cache=True, nogil=True)
def _rsi_kernel(x: FloatArray, window: int) -> FloatArray:
    n, c = x.shape
    out = np.full((n, c), np.nan)
    for j in range(c):
        count = 0
        prev = 0.0
        gain = 0.0
        loss = 0.0
        for i in range(n):
            v = x[i, j]
            if np.isnan(v):
                continue
            count += 1
            if count == 1:
                prev = v
                continue
            change = v - prev
            prev = v
            if count <= window + 1:
                if change < 0:
                    loss -= change
                else:
                    gain += change
                if count < window + 1:
                    continue
                loss /= window
                gain /= window
            else:
                loss *= window - 1
                gain *= window - 1
                if change < 0:
                    loss -= change
                else:
                    gain += change
                loss /= window
                gain /= window
            total = gain + loss
            out[i, j] = 100.0 * (gain / total) if not (-TA_EPSILON < total < TA_EPSILON) else 0.0
    return out


@njit(cache=True, nogil=True)
def _macd_kernel(
    x: FloatArray, fast: int, slow: int, signal: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    n, c = x.shape
    line = np.full((n, c), np.nan)
    trigger = np.full((n, c), np.nan)
    hist = np.full((n, c), np.nan)
    k_fast = 2.0 / (fast + 1)
    k_slow = 2.0 / (slow + 1)
    k_signal = 2.0 / (signal + 1)
    for j in range(c):
        count = 0
        fast_sum = 0.0
        slow_sum = 0.0
        signal_sum = 0.0
        fast_ema = 0.0
        slow_ema = 0.0
        sig = 0.0
        for i in range(n):
            v = x[i, j]
            if np.isnan(v):
                continue
            count += 1
            if count <= slow:
                slow_sum += v
                if count > slow - fast:
                    fast_sum += v
                if count < slow:
                    continue
                slow_ema = slow_sum / slow
                fast_ema = fast_sum / fast
            else:
                slow_ema = ((v - slow_ema) * k_slow) + slow_ema
                fast_ema = ((v - fast_ema) * k_fast) + fast_ema
            m = fast_ema - slow_ema
            m_count = count - slow + 1
            if m_count < signal:
                signal_sum += m
                continue
            if m_count == signal:
                signal_sum += m
                sig = signal_sum / signal
            else:
                sig = ((m - sig) * k_signal) + sig
            line[i, j] = m
            trigger[i, j] = sig
            hist[i, j] = m - sig
    return line, trigger, hist


# --- arguments ---------------------------------------------------------------------------


def _columns(x: FloatArray) -> FloatArray:
    array = np.asarray(x, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D (bars, columns) array, got shape {array.shape}")
    return array


def _period(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)
