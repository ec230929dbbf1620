"""The engine's output layout: one structured-array row per trade, and the codes in it.

A trade is a round trip of one column (one symbol under one parameter set):
its entry fill, its exit fill (or, still open on the last bar, its mark),
the quantity, both fills' fees and the net P&L. `pnl` includes both fees;
`ret` is `pnl` over the entry's cash outlay (notional plus entry fee), so a
short's return has the same sign as its P&L.
"""

from __future__ import annotations

import numpy as np

from models.backtest import ExitReason

TRADE_DTYPE = np.dtype(
    [
        ("col", np.int64),  # column of the run: parameter set x symbol (see engine.Layout)
        ("group", np.int64),  # cash pool (= parameter set with shared cash, else = col)
        ("symbol", np.int64),  # index into the panel's symbols
        ("direction", np.int8),  # +1 long, -1 short
        ("entry_bar", np.int64),
        ("entry_price", np.float64),  # the fill, slippage included
        ("entry_fees", np.float64),
        ("exit_bar", np.int64),  # the last bar for an open trade
        ("exit_price", np.float64),  # the fill; an open trade's last close
        ("exit_fees", np.float64),  # 0 for an open trade
        ("qty", np.float64),  # shares, always positive
        ("pnl", np.float64),  # net of both fees
        ("ret", np.float64),  # pnl / (entry notional + entry fees)
        ("exit_reason", np.int8),  # index into EXIT_REASONS
    ]
)

EXIT_REASONS: tuple[ExitReason, ...] = tuple(ExitReason)
SIGNAL = EXIT_REASONS.index(ExitReason.SIGNAL)
STOP_LOSS = EXIT_REASONS.index(ExitReason.STOP_LOSS)
TAKE_PROFIT = EXIT_REASONS.index(ExitReason.TAKE_PROFIT)
TRAILING_STOP = EXIT_REASONS.index(ExitReason.TRAILING_STOP)
END_OF_DATA = EXIT_REASONS.index(ExitReason.END_OF_DATA)
OPEN = EXIT_REASONS.index(ExitReason.OPEN)
WINDOW_END = EXIT_REASONS.index(ExitReason.WINDOW_END)  # set by walk_forward.stitch only


def empty_trades() -> np.ndarray:
    return np.empty(0, dtype=TRADE_DTYPE)
