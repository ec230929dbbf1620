"""Walk-forward: optimise on a window, trade the winner on the next, step, repeat.

Windows are bar ranges: rolling (`train` bars ending where the test starts)
or expanding (from bar 0). Every window is simulated on its own bars and
starts flat, with signals computed on all bars up to its end
(`sweep.run_grid(first=...)`): indicators are warm at the window's first
bar, because the earlier bars are history known at that time, and no bar
after the window is read. The winner of the in-sample sweep is the set with
the highest `metric`; its out-of-sample windows, chained, are the strategy's
honest equity curve.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.backtest import BacktestConfig, ExitReason, Metrics, WalkForward
from tasks.backtest import records
from tasks.backtest.engine import BacktestResult
from tasks.backtest.metrics import compute_metrics
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import SignalFunction
from tasks.backtest.sweep import best_row, run_grid, score_grid


@dataclass(frozen=True)
class Window:
    index: int
    train: tuple[int, int]  # [first, stop) bars of the panel
    test: tuple[int, int]


@dataclass(frozen=True)
class WindowReport:
    window: Window
    best: dict[str, float]
    in_sample: pd.DataFrame  # every set's parameters and metrics on the train bars
    out_of_sample: BacktestResult  # the winner on the test bars (bar 0 = test start)


def windows(n_bars: int, spec: WalkForward) -> list[Window]:
    """The windows that fit in `n_bars`; the last test window may be shorter than `test`."""
    if n_bars < spec.train + spec.test:
        raise ValueError(
            f"{n_bars} bars cannot hold a {spec.train}-bar training window and a "
            f"{spec.test}-bar test window"
        )
    out: list[Window] = []
    test_first = spec.train
    while test_first < n_bars:
        train_first = 0 if spec.window == "expanding" else test_first - spec.train
        test_stop = min(test_first + spec.test, n_bars)
        out.append(Window(len(out), (train_first, test_first), (test_first, test_stop)))
        test_first = test_stop
    return out


def evaluate_window(
    panel: PricePanel,
    fn: SignalFunction,
    grid: Sequence[Mapping[str, float]],
    config: BacktestConfig,
    window: Window,
    metric: str,
) -> WindowReport:
    """Score every set in sample, then run the best one out of sample."""
    (train_first, train_stop), (test_first, test_stop) = window.train, window.test
    in_sample = score_grid(panel.between(0, train_stop), fn, grid, config, first=train_first)
    best = {k: float(v) for k, v in grid[best_row(in_sample, metric)].items()}
    result = run_grid(panel.between(0, test_stop), fn, [best], config, first=test_first)
    return WindowReport(window, best, in_sample, result)


def stitch(reports: Sequence[WindowReport], config: BacktestConfig) -> tuple[np.ndarray, Metrics]:
    """The out-of-sample windows chained into one curve, each window's growth compounded
    onto the previous window's end, and that curve's metrics (bar 0 = first test bar).

    The metrics count the trades that make the curve: a trade open when its window
    ends is closed there (`WINDOW_END`), since the next window starts flat; only the
    last window's open trades stay open (`open_trades`, `open_pnl`). Counted as open,
    those window-end results made the return while the win rate ignored them.
    """
    if not reports:
        raise ValueError("no walk-forward windows to stitch")
    pieces: list[np.ndarray] = []
    trades: list[np.ndarray] = []
    first = reports[0].window.test[0]
    scales = window_scales(reports, config)
    for report, scale in zip(reports, scales, strict=True):
        pieces.append(report.out_of_sample.set_equity()[:, 0] * scale)
        shifted = window_trades(report, last=report is reports[-1], scale=scale)
        offset = report.window.test[0] - first
        shifted["entry_bar"] += offset
        shifted["exit_bar"] += offset
        trades.append(shifted)
    equity = np.concatenate(pieces)
    metrics = compute_metrics(
        equity,
        np.concatenate(trades),
        init_cash=config.init_cash,
        periods_per_year=config.periods_per_year,
    )
    return equity, metrics


def window_scales(reports: Sequence[WindowReport], config: BacktestConfig) -> list[float]:
    """Each window's size in the stitched curve: the previous window's end over `init_cash`
    (every window is simulated from `init_cash`)."""
    scales: list[float] = []
    level = config.init_cash
    for report in reports:
        scales.append(level / config.init_cash)
        level = float(report.out_of_sample.set_equity()[-1, 0] * scales[-1])
    return scales


def window_trades(report: WindowReport, *, last: bool, scale: float = 1.0) -> np.ndarray:
    """The window's trades (bars of its own test window), sized by `scale`, and closed at
    the window's end unless it is the last window."""
    out = report.out_of_sample.set_trades()
    for field in ("qty", "pnl", "entry_fees", "exit_fees"):
        out[field] *= scale
    if not last:
        out["exit_reason"][out["exit_reason"] == records.OPEN] = records.WINDOW_END
    return out


def stitched_trades_frame(reports: Sequence[WindowReport], config: BacktestConfig) -> pd.DataFrame:
    """Every window's trades as `BacktestResult.trades_frame` spells them, sized and
    closed as `stitch` counts them: what is stored agrees with the metrics."""
    frames = []
    for report, scale in zip(reports, window_scales(reports, config), strict=True):
        frame = report.out_of_sample.trades_frame()
        for column in ("qty", "pnl", "fees"):
            frame[column] = frame[column] * scale
        if report is not reports[-1]:
            frame.loc[frame["exit_reason"] == ExitReason.OPEN.value, "exit_reason"] = (
                ExitReason.WINDOW_END.value
            )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)
