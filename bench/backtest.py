"""Backtest engine vs vectorbt and backtrader, on the same bars, in one run.

    .venv/bin/python bench/backtest.py                 # imports the shared S&P file into a
                                                       # temporary SQLite database first
    .venv/bin/python bench/backtest.py --db sqlite:///data/aitrader.db   # bars already there
    .venv/bin/python bench/backtest.py --quick         # fewer repeats, smoke run

1. SMA 10/50 crossover, long only, next-open fills, 0.1 % fees, cash per
   symbol, on every symbol with a complete history (and on the first 93 of
   them, the issue's shape): ours vs vectorbt (warm: after its compile), and
   backtrader on 20 symbols. Every timing covers signals and simulation
   from the same close/open arrays (indicators included, data loading not).
2. The 4,851 SMA window pairs (fast < slow, 2..100) on one symbol: ours vs
   vectorbt's `MA.run_combs`.
3. numba vs the same kernel as plain Python (`NUMBA_DISABLE_JIT=1`, in a
   child process) on a few symbols: what the compiler buys.

Each row also checks the results agree: identical entry and exit bars and
the largest relative difference of final equity. Bars come in through the
project's own import (`import_bar_file`) and `bars_frame`, like every stage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from db.engine import make_engine, make_session_factory, unit_of_work  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.queries.bar_coverage import bar_coverage  # noqa: E402
from db.queries.bars import bars_frame  # noqa: E402
from models.backtest import BacktestConfig, Costs  # noqa: E402
from models.enums import Timeframe  # noqa: E402
from tasks.backtest.engine import BacktestResult, run_backtest  # noqa: E402
from tasks.backtest.panel import PricePanel  # noqa: E402
from tasks.backtest.signals import signals_for_grid  # noqa: E402
from tasks.backtest.strategies import get_strategy  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "sp500_daily_2015_2020.csv.gz"
START, END = date(2015, 1, 1), date(2020, 12, 31)
FEE = 0.001
CASH = 10_000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="a database already holding the shared bars")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--pure-python", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pure_python:
        _pure_python_child(args.db, args.pure_python)
        return
    repeats = 2 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or _import_shared(Path(tmp) / "bench.db")
        panel = _complete_panel(url)
        print(f"panel: {panel.shape[0]} bars x {panel.shape[1]} symbols with complete histories")
        rows = [
            *_sma_rows(panel, repeats),
            _sweep_row(panel, max(1, repeats - 2)),
            _pure_python_row(url, panel),
        ]
    _print_table(rows)


# --- 1. SMA 10/50 across symbols -----------------------------------------------------------


def _sma_rows(panel: PricePanel, repeats: int) -> list[dict[str, Any]]:
    import vectorbt as vbt
    from _backtrader_sma import run_backtrader_sma, trades_match

    rows = []
    fn = get_strategy("sma_cross").fn
    for n in (93, panel.shape[1]):
        sub = panel.select(list(panel.symbols[:n]))
        config = BacktestConfig(init_cash=CASH * n, costs=Costs(fee_bps=FEE * 1e4))

        def ours(sub: PricePanel = sub, config: BacktestConfig = config) -> BacktestResult:
            return run_backtest(sub, signals_for_grid(fn, sub, [{"fast": 10, "slow": 50}]), config)

        close = pd.DataFrame(sub.close, columns=list(sub.symbols))
        open_ = pd.DataFrame(sub.open, columns=list(sub.symbols))

        def theirs(close: pd.DataFrame = close, open_: pd.DataFrame = open_) -> Any:
            fast = vbt.MA.run(close, 10, short_name="fast")
            slow = vbt.MA.run(close, 50, short_name="slow")
            entries = fast.ma_crossed_above(slow).vbt.fshift(1)
            exits = fast.ma_crossed_below(slow).vbt.fshift(1)
            return vbt.Portfolio.from_signals(
                close, entries, exits, price=open_, fees=FEE, init_cash=CASH, freq="1D"
            )

        t_ours, result = _best(ours, repeats)
        t_vbt, pf = _best(theirs, repeats)
        same, rel = _compare(result, pf)
        cells = n * panel.shape[0]
        rows.append(_row(f"SMA 10/50, {n} symbols", "vectorbt", cells, t_ours, t_vbt, same, rel))
    # backtrader: 20 symbols, each its own broker
    n = 20
    sub = panel.select(list(panel.symbols[:n]))
    index = sub.dates.tz_convert(None)
    frames = {
        k: pd.DataFrame(getattr(sub, k), index=index, columns=list(sub.symbols))
        for k in ("open", "high", "low", "close")
    }
    config = BacktestConfig(init_cash=CASH * n, costs=Costs(fee_bps=FEE * 1e4))
    t_ours, result = _best(
        lambda: run_backtest(sub, signals_for_grid(fn, sub, [{"fast": 10, "slow": 50}]), config),
        repeats,
    )
    bt = run_backtrader_sma(frames["open"], frames["high"], frames["low"], frames["close"], None,
                            fast=10, slow=50, fee=FEE, cash_per_symbol=CASH)  # fmt: skip
    matched, compared = trades_match(_our_trade_bars(result), bt.trades)
    rows.append(
        _row(
            f"SMA 10/50, {n} symbols",
            "backtrader",
            n * panel.shape[0],
            t_ours,
            bt.seconds,
            f"{matched}/{compared}",
            None,
        )
    )
    return rows


# --- 2. the 4,851-pair sweep -----------------------------------------------------------------


def _sweep_row(panel: PricePanel, repeats: int) -> dict[str, Any]:
    import vectorbt as vbt

    one = panel.select([panel.symbols[0]])
    windows = range(2, 101)
    grid = [{"fast": float(f), "slow": float(s)} for f in windows for s in windows if f < s]
    fn = get_strategy("sma_cross").fn
    config = BacktestConfig(init_cash=CASH, costs=Costs(fee_bps=FEE * 1e4))
    close = pd.Series(one.close[:, 0])
    open_ = pd.Series(one.open[:, 0])

    def ours() -> BacktestResult:
        return run_backtest(one, signals_for_grid(fn, one, grid), config)

    def theirs() -> Any:
        fast, slow = vbt.MA.run_combs(close, window=list(windows), r=2, short_names=["f", "s"])
        entries = fast.ma_crossed_above(slow).vbt.fshift(1)
        exits = fast.ma_crossed_below(slow).vbt.fshift(1)
        return vbt.Portfolio.from_signals(
            close, entries, exits, price=open_, fees=FEE, init_cash=CASH, freq="1D"
        )

    t_ours, result = _best(ours, repeats)
    t_vbt, pf = _best(theirs, repeats)
    # run_combs orders its columns as itertools.combinations(windows, 2): the same as `grid`
    theirs_final = pf.final_value().to_numpy()
    rel = float(np.max(np.abs(result.set_equity()[-1] / theirs_final - 1)))
    cells = len(grid) * one.shape[0]
    return _row(f"SMA sweep, {len(grid):,} pairs, 1 symbol", "vectorbt", cells, t_ours, t_vbt,
                "-", rel)  # fmt: skip


# --- 3. numba vs plain Python ----------------------------------------------------------------

PURE_N = 3


def _pure_python_row(url: str, panel: PricePanel) -> dict[str, Any]:
    sub = panel.select(list(panel.symbols[:PURE_N]))
    fn = get_strategy("sma_cross").fn
    config = BacktestConfig(init_cash=CASH * PURE_N, costs=Costs(fee_bps=FEE * 1e4))
    signals = signals_for_grid(fn, sub, [{"fast": 10, "slow": 50}])
    t_jit, result = _best(lambda: run_backtest(sub, signals, config), 5)
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--db", url, "--pure-python", str(PURE_N)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    child = json.loads(out.stdout.strip().splitlines()[-1])
    rel = abs(child["final"] / float(result.set_equity()[-1, 0]) - 1)
    return _row(f"kernel only, {PURE_N} symbols", "same kernel, plain Python",
                PURE_N * panel.shape[0], t_jit, child["seconds"], "-", rel)  # fmt: skip


def _pure_python_child(url: str, n: int) -> None:
    panel = _complete_panel(url)
    sub = panel.select(list(panel.symbols[:n]))
    fn = get_strategy("sma_cross").fn
    config = BacktestConfig(init_cash=CASH * n, costs=Costs(fee_bps=FEE * 1e4))
    signals = signals_for_grid(fn, sub, [{"fast": 10, "slow": 50}])
    seconds, result = _best(lambda: run_backtest(sub, signals, config), 1)
    print(json.dumps({"seconds": seconds, "final": float(result.set_equity()[-1, 0])}))


# --- plumbing ------------------------------------------------------------------------------


def _import_shared(path: Path) -> str:
    from tasks.import_bars import import_bar_file

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    with unit_of_work(make_session_factory(engine)) as session:
        import_bar_file(session, SHARED)
    engine.dispose()
    print(f"imported {SHARED.name} in {time.perf_counter() - started:.1f} s")
    return url


def _complete_panel(url: str) -> PricePanel:
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        coverage = bar_coverage(session, timeframe=Timeframe.D1)
        most = max(c.bars for c in coverage)
        symbols = [c.symbol for c in coverage if c.bars == most]
        frame = bars_frame(session, symbols, START, END)
    engine.dispose()
    return PricePanel.from_frame(frame, symbols)


def _best(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    out = fn()  # warm: numba compiled (or loaded from its cache), caches filled
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - started)
    return best, out


def _compare(result: BacktestResult, pf: Any) -> tuple[str, float]:
    ours = _our_trade_bars(result)
    records = pf.trades.records_arr
    theirs: dict[str, list[tuple[int, int]]] = {s: [] for s in result.panel.symbols}
    for rec in records:
        symbol = result.panel.symbols[int(rec["col"])]
        closed = int(rec["status"]) == 1
        theirs[symbol].append((int(rec["entry_idx"]), int(rec["exit_idx"]) if closed else -1))
    same = sum(sorted(ours[s]) == sorted(theirs[s]) for s in result.panel.symbols)
    final = pf.final_value().to_numpy()
    rel = float(np.max(np.abs(result.equity[-1] / final - 1)))
    return f"{same}/{len(result.panel.symbols)}", rel


def _our_trade_bars(result: BacktestResult) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {s: [] for s in result.panel.symbols}
    open_code = 5  # records.OPEN
    for t in result.trades:
        exit_bar = -1 if int(t["exit_reason"]) == open_code else int(t["exit_bar"])
        out[result.panel.symbols[int(t["symbol"])]].append((int(t["entry_bar"]), exit_bar))
    return out


def _row(
    case: str,
    baseline: str,
    cells: int,
    ours: float,
    theirs: float,
    same: str,
    rel: float | None,
) -> dict[str, Any]:
    return {
        "case": case,
        "baseline": baseline,
        "ours s": f"{ours:.4f}",
        "baseline s": f"{theirs:.4f}",
        "ours bar-cols/s": f"{cells / ours:,.0f}",
        "baseline bar-cols/s": f"{cells / theirs:,.0f}",
        "ratio": f"{theirs / ours:.1f}x",
        "same trades": same,
        "max rel diff final equity": "-" if rel is None else f"{rel:.1e}",
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    headers = list(rows[0])
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in headers) + " |")


if __name__ == "__main__":
    main()
