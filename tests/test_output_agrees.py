"""Backtest output that agrees with itself (issue 16, item 6).

What a new user found: the table's `trades` (closed) and the footer's (all)
disagreed; a walk-forward showed -10.5 % beside a win rate of 1.0 and an
infinite profit factor (its window-end trades made the return but counted
as open); and a 442-set sweep's progress bar sat at `0/?` and the best sets
were never printed. Each is checked here where it is made: the metrics and
the stitching on panels built by hand, the sweep's chunks and progress
records on the flow, and the printout through the real command.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.backtest import backtest
from models.backtest import BacktestConfig, WalkForward
from services.settings import get_settings
from tasks.backtest import records
from tasks.backtest.metrics import compute_metrics, metric_text
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import Params, Signals
from tasks.backtest.sweep import chunk_size
from tasks.backtest.walk_forward import evaluate_window, stitch, stitched_trades_frame, windows
from tests.conftest import Run

START, END = date(2016, 1, 1), date(2019, 12, 31)
WINDOW = 20  # bars per walk-forward window in the hand-built panel


# --- metrics: open trades counted and valued apart; words for inf and NaN --------------


def test_open_trades_are_counted_and_valued_beside_the_closed_ones() -> None:
    trades = np.zeros(3, dtype=records.TRADE_DTYPE)
    trades["pnl"] = [30.0, -10.0, 99.0]
    trades["exit_bar"] = [2, 4, 9]
    trades["exit_reason"] = [records.SIGNAL, records.SIGNAL, records.OPEN]
    m = compute_metrics(np.full(10, 219.0), trades, init_cash=100.0)
    assert (m.trades, m.open_trades, m.open_pnl) == (2, 1, 99.0)
    # closed P&L (expectancy x trades) + open P&L = the curve's P&L
    assert m.expectancy * m.trades + m.open_pnl == pytest.approx(m.final_equity - 100.0)


def test_a_profit_factor_without_losses_reads_as_words_not_inf() -> None:
    assert metric_text("profit_factor", math.inf) == "n/a (no losses)"
    assert metric_text("profit_factor", "inf") == "n/a (no losses)"  # as json_metrics stores it
    assert metric_text("win_rate", "nan") == "n/a"
    assert metric_text("profit_factor", 2.5) == "2.5000"
    assert metric_text("trades", 1234) == "1,234"


# --- walk-forward: the win rate counts the trades that made the return ------------------


def _rise_then_fall() -> np.ndarray:
    """Per window: flat, a rise the closed trade rides (bars 2-7), then a fall to the
    window's end that a trade opened at bar 11 is still holding."""
    one = np.concatenate(
        [[100.0, 100.0], np.linspace(100, 130, 6), [130.0] * 3, np.linspace(130, 80, 9)]
    )
    return np.tile(one, 3)


def _in_and_out(panel: PricePanel, params: Params) -> Signals:
    """In at bar 1 and out at bar 6 of every window; in again at bar 10, never out."""
    phase = np.arange(len(panel.dates)) % WINDOW
    entries = ((phase == 1) | (phase == 10))[:, None]
    exits = (phase == 6)[:, None]
    return Signals(np.ascontiguousarray(entries), np.ascontiguousarray(exits))


def test_a_walk_forward_counts_the_trades_that_made_its_return() -> None:
    prices = _rise_then_fall()
    dates = pd.date_range("2020-01-01", periods=len(prices), freq="D", tz="UTC")
    column = prices[:, None]
    panel = PricePanel(dates=dates, symbols=("S",), open=column, high=column, low=column,
                       close=column.copy())  # fmt: skip
    config = BacktestConfig(init_cash=1000.0)
    plan = windows(len(dates), WalkForward(train=WINDOW, test=WINDOW))
    reports = [
        evaluate_window(panel, _in_and_out, [{"k": 1.0}], config, w, "total_return") for w in plan
    ]
    equity, m = stitch(reports, config)

    assert m.total_return < 0  # the falls outweigh the rises
    # Two windows: each a winning closed trade, then a trade the window's end closes at a
    # loss, except in the last window, where it is still open.
    assert (m.trades, m.open_trades) == (3, 1)
    assert m.win_rate == pytest.approx(2 / 3)  # was 1.0: the losses counted as "open"
    assert math.isfinite(m.profit_factor)  # was inf: no losing trade among the closed ones
    assert m.open_pnl < 0
    assert m.expectancy * m.trades + m.open_pnl == pytest.approx(equity[-1] - 1000.0)

    stored = stitched_trades_frame(reports, config)
    assert stored["exit_reason"].tolist() == ["signal", "window_end", "signal", "open"]
    assert stored["pnl"].sum() == pytest.approx(equity[-1] - 1000.0)  # sized as the curve


# --- sweeps: chunks the bar can count, progress from 0 of the total -----------------------


def test_a_mid_size_sweep_is_split_for_the_workers_and_a_large_one_by_the_limit() -> None:
    assert chunk_size(442, limit=500, workers=2) == 56  # 8 chunks, was one of 442
    assert chunk_size(5_000, limit=500, workers=2) == 500
    assert chunk_size(9, limit=500, workers=2) == 16  # small sweeps stay one chunk
    assert chunk_size(9, limit=3, workers=2) == 3


class _Progress(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[int, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(
            (record.__dict__["done"], record.__dict__["total"], record.__dict__["unit"])
        )


@pytest.fixture
def progress(
    sample_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[_Progress]:
    monkeypatch.setenv("BACKTEST_PLOT_DIR", str(tmp_path / "plots"))
    get_settings.cache_clear()
    log = logging.getLogger("flows.backtest.progress")
    handler = _Progress()
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)
    get_settings.cache_clear()


def test_a_442_set_sweep_reports_its_total_first_and_advances_per_chunk(
    progress: _Progress,
) -> None:
    params: dict[str, float | list[float]] = {
        "fast": [float(f) for f in range(5, 31)],
        "slow": [float(s) for s in range(40, 201, 10)],
    }
    summary = backtest("sma_cross", ["AAPL"], START, END, params=params)
    done = [d for d, _, _ in progress.seen]
    assert {(t, u) for _, t, u in progress.seen} == {(442, "parameter sets")}
    assert (done[0], done[-1]) == (0, 442)
    assert done == sorted(done)
    assert len(done) == 1 + 8  # 0, then each of 8 chunks
    assert summary["sets"] == 442
    sharpes = [row["metrics"]["sharpe"] for row in summary["top"]]
    assert len(sharpes) == 20
    assert sharpes == sorted(sharpes, reverse=True)
    assert summary["top"][0]["params"] == summary["best_params"]


# --- the printout ---------------------------------------------------------------------


def _row(out: str, label: str) -> list[str]:
    """The cells of the table row labelled `label`."""
    for line in out.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if cells and cells[0] == label:
            return cells[1:]
    raise AssertionError(f"no row {label!r} in:\n{out}")


def test_the_printout_agrees_with_itself(
    aitrader: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKTEST_PLOT_DIR", str(tmp_path / "plots"))
    monkeypatch.setenv("COLUMNS", "200")
    code, out = aitrader(
        "backtest", "run", "--strategy", "sma_cross", "--param", "fast=10",
        "--param", "slow=50", "--symbols", "AAPL,MSFT", "--start", "2016-01-01",
        "--end", "2019-12-31",
    )  # fmt: skip
    assert code == 0, out
    closed = int(_row(out, "trades (closed)")[0])
    still_open = int(_row(out, "open_trades (at the end)")[0])
    assert f"{closed + still_open} trades ({closed} closed, {still_open} open)" in out
    assert re.search(r"P&L [+-][\d,.]+ \([+-][\d.]+%\) = closed trades [+-][\d,.]+ "
                     r"\+ open trades [+-][\d,.]+ \(marked\)", out)  # fmt: skip
    assert not re.search(r"\b(inf|nan)\b", out)
    assert _row(out, "profit_factor (closed trades)")[1] == "n/a"  # buy and hold: no trades

    code, out = aitrader(
        "backtest", "run", "--strategy", "sma_cross", "--param", "fast=5:12",
        "--param", "slow=40:60:10", "--symbols", "AAPL", "--start", "2016-01-01",
        "--end", "2019-12-31", "--top", "5",
    )  # fmt: skip
    assert code == 0, out
    assert "top 5 of 24 sets by sharpe" in out
    winner = re.search(r"backtest \d+: fast=(\d+) slow=(\d+)", out)
    assert winner is not None
    assert _row(out, "1")[:2] == list(winner.groups())  # the top set is the winner
    ranked = [float(_row(out, str(rank))[2]) for rank in range(1, 6)]
    assert ranked == sorted(ranked, reverse=True)
    assert not re.search(r"\b(inf|nan)\b", out)
