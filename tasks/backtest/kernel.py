"""The compiled simulation: one pass over the bars, every column, every cash pool.

`simulate` is the whole order logic; `engine.run_backtest` prepares its
arrays and turns its output into trades and equity. Columns are (parameter
set x symbol); `col_symbol` maps a column to its symbol's price column, so a
4,851-set sweep over one symbol reads one price series. Columns are grouped
into cash pools by `group_start` (pool g owns columns group_start[g] ..
group_start[g+1]-1); pools are independent, so the loop runs pool by pool.

Within a bar, in this order (the contract the tests pin down):

1. **Open.** Orders decided on the previous close fill at this bar's open,
   exits before entries so a shared pool frees cash first. A column whose
   symbol has no bar here keeps its order for the next bar it trades.
2. **Inside the bar.** Stops of every open position: a bar that opens
   beyond a level exits at the open; otherwise, if the range touches the
   stop (fixed or trailing, whichever is tighter) the stop fills at its
   level; else if it touches the take-profit, that fills at its level. A
   range touching both counts as the stop (pessimistic; daily bars do not
   say which came first). The trailing level uses the best price up to the
   previous bar (the entry fill on the entry bar), then this bar's extreme
   is taken in. The entry bar is checked too, except for gaps: its open is
   the entry.
3. **End of data.** A position whose symbol has no later bar while the
   backtest goes on (a delisting) is closed at its last close.
4. **Close.** Positions are marked (a missing bar keeps the last close),
   the pool's equity is recorded, then this close's signals become orders
   for the next open (or fill now at this close with `same_bar`).

Sizing is decided at the fill: shares, cash, or a fraction of the pool's
equity at the previous close, capped by free cash (cash less the collateral
that open shorts hold: a short holds its proceeds and as much again, so it
uses buying power like a long of the same notional). Fees are
`notional * fee_rate + fee_fixed`; slippage moves each fill's price against
the order. No margin calls: a short that runs away only stops new entries.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Sizing modes, in models.backtest.SizingMode order.
SIZE_SHARES = 0
SIZE_CASH = 1
SIZE_EQUITY_FRACTION = 2

# Float and int columns of the raw trade rows `simulate` returns.
TF_ENTRY_PRICE, TF_ENTRY_FEES, TF_EXIT_PRICE, TF_EXIT_FEES, TF_QTY, TF_PNL, TF_RET = range(7)
N_TF = 7
TI_COL, TI_GROUP, TI_SYMBOL, TI_DIRECTION, TI_ENTRY_BAR, TI_EXIT_BAR, TI_REASON = range(7)
N_TI = 7

# Exit reasons, in models.backtest.ExitReason order (records.py checks the match).
_SIGNAL, _STOP_LOSS, _TAKE_PROFIT, _TRAILING, _END_OF_DATA, _OPEN = range(6)

# Pending orders of a column, decided at a close.
_NONE, _LONG, _SHORT = 0, 1, -1

_QTY_EPS = 1e-12


@njit(cache=True, nogil=True, error_model="numpy")
def simulate(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    col_symbol: np.ndarray,
    group_start: np.ndarray,
    entries: np.ndarray,
    exits: np.ndarray,
    short_entries: np.ndarray,
    short_exits: np.ndarray,
    init_cash: np.ndarray,
    last_bar: np.ndarray,
    allow_long: bool,
    allow_short: bool,
    size_mode: int,
    size_value: float,
    fractional: bool,
    fee_rate: float,
    fee_fixed: float,
    slippage: float,
    stop_loss: np.ndarray,
    take_profit: np.ndarray,
    trailing: np.ndarray,
    same_bar: bool,
    equity: np.ndarray,
    tf: np.ndarray,
    ti: np.ndarray,
) -> tuple[int, int]:
    """Run every pool over every bar; fills `equity` (bars, pools) and the trade rows
    `tf` (float fields `TF_*`) and `ti` (int fields `TI_*`) in place.

    Returns (number of trades, orders refused for lack of cash). `tf`/`ti`
    must have a row for every trade: at most one per entry signal the run can
    act on, plus one per column (the caller counts them; growing arrays in
    the loop would cost refcounting on every bar). `stop_loss`,
    `take_profit`, `trailing` are per column, NaN = off.
    """
    n_bars = open_.shape[0]
    n_cols = col_symbol.shape[0]
    n_groups = group_start.shape[0] - 1
    n_trades = 0
    refused = 0

    pos = np.zeros(n_cols)  # signed shares
    entry_px = np.zeros(n_cols)
    entry_fee = np.zeros(n_cols)
    entry_bar = np.zeros(n_cols, dtype=np.int64)
    best = np.zeros(n_cols)  # highest high (long) / lowest low (short) since entry
    pend_close = np.zeros(n_cols, dtype=np.bool_)
    pend_open = np.zeros(n_cols, dtype=np.int8)
    mark = np.full(n_cols, np.nan)

    for g in range(n_groups):
        c0 = group_start[g]
        c1 = group_start[g + 1]
        cash = init_cash[g]
        locked = 0.0
        eq_prev = cash
        for t in range(n_bars):
            # 1. the open: exits, then entries
            if not same_bar:
                for c in range(c0, c1):
                    if pend_close[c]:
                        px = open_[t, col_symbol[c]]
                        if math.isnan(px):
                            continue
                        pend_close[c] = False
                        if pos[c] != 0.0:
                            cash, locked, n_trades = _close(
                                c, g, col_symbol[c], t, px, _SIGNAL, pos, entry_px, entry_fee,
                                entry_bar, cash, locked, fee_rate, fee_fixed, slippage,
                                n_trades, tf, ti,
                            )  # fmt: skip
                for c in range(c0, c1):
                    if pend_open[c] != _NONE:
                        px = open_[t, col_symbol[c]]
                        if math.isnan(px) or pend_close[c]:
                            continue
                        side = pend_open[c]
                        pend_open[c] = _NONE
                        if pos[c] == 0.0:
                            ok, cash, locked = _open(
                                c, side, t, px, eq_prev, pos, entry_px, entry_fee, entry_bar,
                                best, cash, locked, size_mode, size_value, fractional,
                                fee_rate, fee_fixed, slippage,
                            )  # fmt: skip
                            if not ok:
                                refused += 1

            # 2. stops inside the bar
            for c in range(c0, c1):
                if pos[c] == 0.0:
                    continue
                s = col_symbol[c]
                o, h, lo = open_[t, s], high[t, s], low[t, s]
                if math.isnan(o) or (same_bar and entry_bar[c] == t):
                    continue
                px, reason = _stop_fill(
                    pos[c] > 0.0, entry_px[c], best[c], o, h, lo, entry_bar[c] == t,
                    stop_loss[c], take_profit[c], trailing[c],
                )  # fmt: skip
                if reason >= 0:
                    cash, locked, n_trades = _close(
                        c, g, s, t, px, reason, pos, entry_px, entry_fee, entry_bar, cash,
                        locked, fee_rate, fee_fixed, slippage, n_trades, tf, ti,
                    )  # fmt: skip
                    pend_close[c] = False
                elif pos[c] > 0.0:
                    best[c] = max(best[c], h)
                else:
                    best[c] = min(best[c], lo)

            # 3. end of the symbol's data, 4. the close
            for c in range(c0, c1):
                s = col_symbol[c]
                px = close[t, s]
                if not math.isnan(px):
                    mark[c] = px
                    if t == last_bar[s] and t < n_bars - 1:
                        pend_close[c] = False
                        pend_open[c] = _NONE
                        if pos[c] != 0.0:
                            cash, locked, n_trades = _close(
                                c, g, s, t, px, _END_OF_DATA, pos, entry_px, entry_fee,
                                entry_bar, cash, locked, fee_rate, fee_fixed, slippage,
                                n_trades, tf, ti,
                            )  # fmt: skip
                        continue
                    if t < n_bars - 1 or same_bar:
                        close_now, open_side = _decide(
                            pos[c], allow_long and entries[t, c], exits[t, c],
                            allow_short and short_entries[t, c], short_exits[t, c],
                        )  # fmt: skip
                        if close_now:
                            pend_close[c] = True
                        if open_side != _NONE:
                            pend_open[c] = open_side
                        if same_bar:
                            if pend_close[c] and pos[c] != 0.0:
                                cash, locked, n_trades = _close(
                                    c, g, s, t, px, _SIGNAL, pos, entry_px, entry_fee,
                                    entry_bar, cash, locked, fee_rate, fee_fixed, slippage,
                                    n_trades, tf, ti,
                                )  # fmt: skip
                            pend_close[c] = False
            if same_bar:
                for c in range(c0, c1):
                    if pend_open[c] != _NONE:
                        side = pend_open[c]
                        pend_open[c] = _NONE
                        if pos[c] == 0.0:
                            ok, cash, locked = _open(
                                c, side, t, close[t, col_symbol[c]], eq_prev, pos, entry_px,
                                entry_fee, entry_bar, best, cash, locked, size_mode,
                                size_value, fractional, fee_rate, fee_fixed, slippage,
                            )  # fmt: skip
                            if not ok:
                                refused += 1
            eq = cash
            for c in range(c0, c1):
                if pos[c] != 0.0:
                    eq += pos[c] * mark[c]
            equity[t, g] = eq
            eq_prev = eq

        # positions still open on the last bar: reported, not closed
        for c in range(c0, c1):
            if pos[c] != 0.0:
                n_trades = _record(
                    c, g, col_symbol[c], n_bars - 1, mark[c], 0.0, _OPEN, pos[c],
                    entry_px[c], entry_fee[c], entry_bar[c], n_trades, tf, ti,
                )  # fmt: skip
                pos[c] = 0.0
            pend_close[c] = False
            pend_open[c] = _NONE
    return n_trades, refused


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _decide(position: float, el: bool, xl: bool, es: bool, xs: bool) -> tuple[bool, int]:
    """(close the position?, side to open or _NONE) for this close's signals.

    An entry and its own exit on one bar cancel out; a long's short entry
    (or a short's long entry) closes it and reverses.
    """
    if el and xl:
        el = False
        xl = False
    if es and xs:
        es = False
        xs = False
    if position > 0.0:
        if es and not el:
            return True, _SHORT
        return xl or es, _NONE
    if position < 0.0:
        if el and not es:
            return True, _LONG
        return xs or el, _NONE
    if el and not es:
        return False, _LONG
    if es and not el:
        return False, _SHORT
    return False, _NONE


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _stop_fill(
    is_long: bool,
    entry: float,
    best: float,
    o: float,
    h: float,
    lo: float,
    entry_bar: bool,
    sl: float,
    tp: float,
    trail: float,
) -> tuple[float, int]:
    """(fill price before slippage, exit reason) of a stop hit in this bar, or (nan, -1)."""
    if is_long:
        stop = -np.inf
        reason = -1
        if not math.isnan(sl):
            stop = entry * (1.0 - sl)
            reason = _STOP_LOSS
        if not math.isnan(trail) and best * (1.0 - trail) > stop:
            stop = best * (1.0 - trail)
            reason = _TRAILING
        target = entry * (1.0 + tp) if not math.isnan(tp) else np.inf
        if not entry_bar:
            if reason >= 0 and o <= stop:
                return o, reason
            if o >= target:
                return o, _TAKE_PROFIT
        if reason >= 0 and lo <= stop:
            return stop, reason
        if h >= target:
            return target, _TAKE_PROFIT
        return np.nan, -1
    stop = np.inf
    reason = -1
    if not math.isnan(sl):
        stop = entry * (1.0 + sl)
        reason = _STOP_LOSS
    if not math.isnan(trail) and best * (1.0 + trail) < stop:
        stop = best * (1.0 + trail)
        reason = _TRAILING
    target = entry * (1.0 - tp) if not math.isnan(tp) else -np.inf
    if not entry_bar:
        if reason >= 0 and o >= stop:
            return o, reason
        if o <= target:
            return o, _TAKE_PROFIT
    if reason >= 0 and h >= stop:
        return stop, reason
    if lo <= target:
        return target, _TAKE_PROFIT
    return np.nan, -1


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _open(
    c: int,
    side: int,
    t: int,
    price: float,
    equity_prev: float,
    pos: np.ndarray,
    entry_px: np.ndarray,
    entry_fee: np.ndarray,
    entry_bar: np.ndarray,
    best: np.ndarray,
    cash: float,
    locked: float,
    size_mode: int,
    size_value: float,
    fractional: bool,
    fee_rate: float,
    fee_fixed: float,
    slippage: float,
) -> tuple[bool, float, float]:
    """Open a position of `side` at `price` (slippage applied); False if nothing was affordable."""
    px = price * (1.0 + slippage) if side == _LONG else price * (1.0 - slippage)
    if not px > 0.0:
        return False, cash, locked
    if size_mode == SIZE_SHARES:
        qty = size_value
    elif size_mode == SIZE_CASH:
        qty = size_value / px
    else:
        qty = size_value * equity_prev / px
    if not fractional:
        qty = math.floor(qty + 1e-9)
    free = cash - locked
    notional = qty * px
    fees = notional * fee_rate + fee_fixed
    if notional + fees > free:
        # as much as the free cash pays for, fees included
        qty = (free - fee_fixed) / (px * (1.0 + fee_rate))
        if not fractional:
            qty = math.floor(qty + 1e-9)
        notional = qty * px
        fees = notional * fee_rate + fee_fixed
        if fractional and qty > _QTY_EPS:
            fees = free - notional  # spend exactly the free cash, no rounding residue
    if qty <= _QTY_EPS:
        return False, cash, locked
    if side == _LONG:
        cash -= notional + fees
        pos[c] = qty
    else:
        cash += notional - fees
        locked += 2.0 * notional
        pos[c] = -qty
    entry_px[c] = px
    entry_fee[c] = fees
    entry_bar[c] = t
    best[c] = px
    return True, cash, locked


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _close(
    c: int,
    g: int,
    s: int,
    t: int,
    price: float,
    reason: int,
    pos: np.ndarray,
    entry_px: np.ndarray,
    entry_fee: np.ndarray,
    entry_bar: np.ndarray,
    cash: float,
    locked: float,
    fee_rate: float,
    fee_fixed: float,
    slippage: float,
    n_trades: int,
    tf: np.ndarray,
    ti: np.ndarray,
) -> tuple[float, float, int]:
    """Close column c's whole position at `price` (slippage applied) and record the trade."""
    qty = pos[c]
    if qty > 0.0:
        px = price * (1.0 - slippage)
        notional = qty * px
        fees = notional * fee_rate + fee_fixed
        cash += notional - fees
    else:
        px = price * (1.0 + slippage)
        notional = -qty * px
        fees = notional * fee_rate + fee_fixed
        cash -= notional + fees
        locked -= 2.0 * (-qty) * entry_px[c]
        if locked < 1e-9 * abs(cash):
            locked = max(locked, 0.0)
    n_trades = _record(
        c, g, s, t, px, fees, reason, qty, entry_px[c], entry_fee[c], entry_bar[c],
        n_trades, tf, ti,
    )  # fmt: skip
    pos[c] = 0.0
    return cash, locked, n_trades


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _record(
    c: int,
    g: int,
    s: int,
    t: int,
    exit_px: float,
    exit_fees: float,
    reason: int,
    signed_qty: float,
    entry_px: float,
    entry_fees: float,
    entry_bar: int,
    n: int,
    tf: np.ndarray,
    ti: np.ndarray,
) -> int:
    qty = abs(signed_qty)
    direction = 1 if signed_qty > 0.0 else -1
    pnl = direction * qty * (exit_px - entry_px) - entry_fees - exit_fees
    outlay = qty * entry_px + entry_fees
    tf[n, TF_ENTRY_PRICE] = entry_px
    tf[n, TF_ENTRY_FEES] = entry_fees
    tf[n, TF_EXIT_PRICE] = exit_px
    tf[n, TF_EXIT_FEES] = exit_fees
    tf[n, TF_QTY] = qty
    tf[n, TF_PNL] = pnl
    tf[n, TF_RET] = pnl / outlay if outlay > 0.0 else np.nan
    ti[n, TI_COL] = c
    ti[n, TI_GROUP] = g
    ti[n, TI_SYMBOL] = s
    ti[n, TI_DIRECTION] = direction
    ti[n, TI_ENTRY_BAR] = entry_bar
    ti[n, TI_EXIT_BAR] = t
    ti[n, TI_REASON] = reason
    return n + 1
