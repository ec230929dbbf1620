"""The simulation's rules on small panels whose every fill is computed by hand here.

Each test builds a few bars, a signal or two, and checks the trades (bars,
prices, sizes, fees, P&L, exit reason) and the equity the engine reports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.backtest import (
    BacktestConfig,
    Costs,
    Direction,
    ExitReason,
    FillTiming,
    Sizing,
    SizingMode,
    Stops,
)
from tasks.backtest import records
from tasks.backtest.engine import BacktestResult, buy_and_hold, run_backtest
from tasks.backtest.panel import PricePanel
from tasks.backtest.signals import Signals

NAN = math.nan


def make_panel(
    opens: Sequence[Sequence[float]],
    closes: Sequence[Sequence[float]] | None = None,
    highs: Sequence[Sequence[float]] | None = None,
    lows: Sequence[Sequence[float]] | None = None,
) -> PricePanel:
    """Bars x symbols; closes default to the opens, highs/lows to max/min of open and close."""
    o = np.array(opens, dtype=np.float64)
    c = np.array(closes, dtype=np.float64) if closes is not None else o.copy()
    h = np.array(highs, dtype=np.float64) if highs is not None else np.fmax(o, c)
    lo = np.array(lows, dtype=np.float64) if lows is not None else np.fmin(o, c)
    dates = pd.date_range("2020-01-01", periods=len(o), freq="D", tz="UTC")
    symbols = tuple(f"S{i}" for i in range(o.shape[1]))
    return PricePanel(dates=dates, symbols=symbols, open=o, high=h, low=lo, close=c)


def flags(n_bars: int, n_cols: int, at: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    out = np.zeros((n_bars, n_cols), dtype=np.bool_)
    for t, c in at:
        out[t, c] = True
    return out


def run(
    panel: PricePanel,
    entries: Sequence[tuple[int, int]] = (),
    exits: Sequence[tuple[int, int]] = (),
    short_entries: Sequence[tuple[int, int]] | None = None,
    short_exits: Sequence[tuple[int, int]] | None = None,
    **config: object,
) -> BacktestResult:
    n, k = panel.shape
    signals = Signals(
        flags(n, k, entries),
        flags(n, k, exits),
        None if short_entries is None else flags(n, k, short_entries),
        None if short_exits is None else flags(n, k, short_exits),
    )
    return run_backtest(panel, signals, BacktestConfig.model_validate(config))


def only_trade(result: BacktestResult) -> np.void:
    assert len(result.trades) == 1, result.trades
    trade: np.void = result.trades[0]
    return trade


def reason(trade: np.void) -> ExitReason:
    return records.EXIT_REASONS[int(trade["exit_reason"])]


# --- fills, costs, sizing ---------------------------------------------------------------


def test_a_signal_fills_at_the_next_bars_open_with_fees_on_both_fills() -> None:
    panel = make_panel([[10.0], [11.0], [12.0], [13.0]], closes=[[10.5], [11.5], [12.5], [13.5]])
    result = run(panel, entries=[(0, 0)], exits=[(2, 0)], init_cash=1000.0,
                 costs={"fee_bps": 10, "fee_fixed": 1.0})  # fmt: skip
    trade = only_trade(result)
    qty = (1000.0 - 1.0) / (11.0 * 1.001)  # all the cash, fees included
    assert trade["entry_bar"] == 1
    assert trade["entry_price"] == 11.0
    assert trade["qty"] == pytest.approx(qty, rel=1e-12)
    assert trade["exit_bar"] == 3
    assert trade["exit_price"] == 13.0
    exit_fees = qty * 13.0 * 0.001 + 1.0
    assert trade["exit_fees"] == pytest.approx(exit_fees, rel=1e-12)
    assert trade["pnl"] == pytest.approx(qty * 13.0 - exit_fees - 1000.0, rel=1e-12)
    assert reason(trade) is ExitReason.SIGNAL
    # equity: cash before the fill, the position marked at each close after it, cash after
    assert result.equity[0, 0] == 1000.0
    assert result.equity[1, 0] == pytest.approx(qty * 11.5, rel=1e-12)
    assert result.equity[2, 0] == pytest.approx(qty * 12.5, rel=1e-12)
    assert result.equity[3, 0] == pytest.approx(qty * 13.0 - exit_fees, rel=1e-12)


def test_a_signal_on_the_last_bar_is_never_filled() -> None:
    panel = make_panel([[10.0], [11.0], [12.0]])
    result = run(panel, entries=[(2, 0)])
    assert len(result.trades) == 0
    assert result.equity[-1, 0] == 100_000.0


def test_slippage_moves_each_fill_against_the_order() -> None:
    panel = make_panel([[100.0], [100.0], [100.0], [100.0]])
    result = run(panel, entries=[(0, 0)], exits=[(1, 0)], costs={"slippage_bps": 50})
    trade = only_trade(result)
    assert trade["entry_price"] == pytest.approx(100.5)
    assert trade["exit_price"] == pytest.approx(99.5)
    assert trade["pnl"] == pytest.approx(trade["qty"] * -1.0)


def test_fixed_shares_cash_and_whole_shares_sizing() -> None:
    panel = make_panel([[10.0], [30.0], [30.0]])
    shares = only_trade(run(panel, entries=[(0, 0)], sizing={"mode": "shares", "value": 7}))
    assert shares["qty"] == 7
    cash = only_trade(run(panel, entries=[(0, 0)], sizing={"mode": "cash", "value": 1000}))
    assert cash["qty"] == pytest.approx(1000 / 30.0)
    whole = run(
        panel, entries=[(0, 0)], sizing={"mode": "cash", "value": 1000, "fractional": False}
    )
    assert only_trade(whole)["qty"] == 33


def test_an_entry_larger_than_the_cash_is_cut_to_what_the_cash_pays_for() -> None:
    panel = make_panel([[10.0], [50.0], [50.0]])
    result = run(panel, entries=[(0, 0)], init_cash=1000.0, costs={"fee_bps": 100},
                 sizing={"mode": "shares", "value": 500, "fractional": False})  # fmt: skip
    assert only_trade(result)["qty"] == 19  # 19 * 50 * 1.01 = 959.5 <= 1000 < 20 * 50 * 1.01
    assert result.refused_orders == 0


def test_an_entry_the_cash_cannot_pay_for_is_refused_and_counted() -> None:
    panel = make_panel([[10.0], [5000.0], [5000.0]])
    result = run(panel, entries=[(0, 0)], init_cash=1000.0,
                 sizing={"mode": "shares", "value": 1, "fractional": False})  # fmt: skip
    assert len(result.trades) == 0
    assert result.refused_orders == 1
    assert result.equity[-1, 0] == 1000.0


def test_an_entry_and_its_exit_on_one_bar_cancel_out() -> None:
    panel = make_panel([[10.0], [11.0], [12.0]])
    assert len(run(panel, entries=[(0, 0)], exits=[(0, 0)]).trades) == 0


def test_an_entry_while_in_a_position_adds_nothing() -> None:
    panel = make_panel([[10.0], [11.0], [12.0], [13.0], [14.0]])
    result = run(panel, entries=[(0, 0), (1, 0), (2, 0)], exits=[(3, 0)])
    trade = only_trade(result)
    assert (trade["entry_bar"], trade["exit_bar"]) == (1, 4)


# --- stops -------------------------------------------------------------------------------


def test_a_stop_loss_fills_at_its_level_inside_the_bar() -> None:
    panel = make_panel(
        opens=[[100.0], [100.0], [99.0], [98.0]],
        closes=[[100.0], [99.0], [97.0], [98.0]],
        lows=[[100.0], [98.0], [94.0], [97.0]],
        highs=[[100.0], [101.0], [99.0], [99.0]],
    )
    trade = only_trade(run(panel, entries=[(0, 0)], stops={"stop_loss": 0.05}))
    assert (trade["entry_bar"], trade["exit_bar"]) == (1, 2)
    assert trade["exit_price"] == pytest.approx(95.0)
    assert reason(trade) is ExitReason.STOP_LOSS


def test_a_bar_that_opens_through_the_stop_fills_at_its_open() -> None:
    panel = make_panel(
        opens=[[100.0], [100.0], [90.0], [90.0]],
        lows=[[100.0], [99.0], [88.0], [90.0]],
    )
    trade = only_trade(run(panel, entries=[(0, 0)], stops={"stop_loss": 0.05}))
    assert trade["exit_bar"] == 2
    assert trade["exit_price"] == 90.0
    assert reason(trade) is ExitReason.STOP_LOSS


def test_a_bar_touching_both_stop_and_target_counts_as_the_stop() -> None:
    panel = make_panel(
        opens=[[100.0], [100.0], [100.0]],
        highs=[[100.0], [100.0], [111.0]],
        lows=[[100.0], [100.0], [94.0]],
    )
    stops = {"stop_loss": 0.05, "take_profit": 0.10}
    trade = only_trade(run(panel, entries=[(0, 0)], stops=stops))
    assert trade["exit_price"] == pytest.approx(95.0)
    assert reason(trade) is ExitReason.STOP_LOSS


def test_a_take_profit_fills_at_its_level_or_at_a_gap_open_beyond_it() -> None:
    touched = make_panel(opens=[[100.0], [100.0], [104.0]], highs=[[100.0], [100.0], [111.0]])
    trade = only_trade(run(touched, entries=[(0, 0)], stops={"take_profit": 0.10}))
    assert trade["exit_price"] == pytest.approx(110.0)
    assert reason(trade) is ExitReason.TAKE_PROFIT
    gapped = make_panel(opens=[[100.0], [100.0], [115.0]])
    trade = only_trade(run(gapped, entries=[(0, 0)], stops={"take_profit": 0.10}))
    assert trade["exit_price"] == 115.0


def test_the_entry_bar_itself_can_stop_out() -> None:
    panel = make_panel(opens=[[100.0], [100.0], [100.0]], lows=[[100.0], [90.0], [100.0]])
    trade = only_trade(run(panel, entries=[(0, 0)], stops={"stop_loss": 0.05}))
    assert (trade["entry_bar"], trade["exit_bar"]) == (1, 1)
    assert trade["exit_price"] == pytest.approx(95.0)


def test_a_trailing_stop_follows_the_highest_high_of_the_bars_before() -> None:
    # entry 100; highs 110 then 120; the bar with high 120 dips to 107 but its stop is
    # still 10 % under 110 (99); the next bar's stop is 108 and its low of 107 hits it
    panel = make_panel(
        opens=[[100.0], [100.0], [109.0], [115.0], [110.0]],
        highs=[[100.0], [110.0], [120.0], [116.0], [111.0]],
        lows=[[100.0], [100.0], [107.0], [107.0], [109.0]],
        closes=[[100.0], [109.0], [115.0], [110.0], [110.0]],
    )
    trade = only_trade(run(panel, entries=[(0, 0)], stops={"trailing_stop": 0.10}))
    assert trade["exit_bar"] == 3
    assert trade["exit_price"] == pytest.approx(108.0)
    assert reason(trade) is ExitReason.TRAILING_STOP


# --- shorts ------------------------------------------------------------------------------


def test_a_short_profits_from_a_fall_and_its_stop_sits_above_the_entry() -> None:
    panel = make_panel([[100.0], [100.0], [90.0], [80.0]])
    result = run(panel, short_entries=[(0, 0)], short_exits=[(1, 0)], direction="short",
                 init_cash=10_000.0, costs={"fee_bps": 10})  # fmt: skip
    trade = only_trade(result)
    assert trade["direction"] == -1
    qty = 10_000.0 / (100.0 * 1.001)
    assert trade["qty"] == pytest.approx(qty)
    expected = qty * (100.0 - 90.0) - qty * 100.0 * 0.001 - qty * 90.0 * 0.001
    assert trade["pnl"] == pytest.approx(expected)
    assert result.equity[-1, 0] == pytest.approx(10_000.0 + expected)

    rising = make_panel(opens=[[100.0], [100.0], [103.0]], highs=[[100.0], [100.0], [106.0]])
    stopped = only_trade(run(rising, short_entries=[(0, 0)], direction="short",
                             stops={"stop_loss": 0.05}))  # fmt: skip
    assert stopped["exit_price"] == pytest.approx(105.0)
    assert reason(stopped) is ExitReason.STOP_LOSS


def test_a_strategy_without_short_rules_is_mirrored_when_shorting() -> None:
    panel = make_panel([[100.0], [100.0], [90.0], [90.0]])
    trade = only_trade(run(panel, entries=[(1, 0)], exits=[(0, 0)], direction="short"))
    assert trade["direction"] == -1
    assert (trade["entry_bar"], trade["exit_bar"]) == (1, 2)


def test_a_long_reverses_into_a_short_at_one_open() -> None:
    panel = make_panel([[100.0], [100.0], [110.0], [100.0], [100.0]])
    result = run(panel, entries=[(0, 0)], exits=[(1, 0)], short_entries=[(1, 0)],
                 short_exits=[(2, 0)], direction="both")  # fmt: skip
    long, short = result.trades
    assert (long["direction"], long["entry_bar"], long["exit_bar"]) == (1, 1, 2)
    assert (short["direction"], short["entry_bar"], short["exit_bar"]) == (-1, 2, 3)
    assert short["pnl"] > 0  # sold at 110, covered at 100


def test_shorting_uses_buying_power_like_a_long() -> None:
    # a short of all the equity leaves nothing free for a second symbol's entry
    panel = make_panel([[100.0, 50.0], [100.0, 50.0], [100.0, 50.0]])
    result = run(panel, short_entries=[(0, 0)], entries=[(0, 1)], direction="both",
                 shared_cash=True, sizing={"mode": "equity_fraction", "value": 1.0})  # fmt: skip
    assert len(result.trades) == 1
    assert result.refused_orders == 1


# --- ragged panels -----------------------------------------------------------------------


def test_an_order_waits_through_a_gap_for_the_next_bar_the_symbol_trades() -> None:
    panel = make_panel([[10.0], [NAN], [NAN], [12.0], [13.0]])
    trade = only_trade(run(panel, entries=[(0, 0)]))
    assert trade["entry_bar"] == 3
    assert trade["entry_price"] == 12.0


def test_a_position_in_a_delisted_symbol_is_closed_at_its_last_close() -> None:
    panel = make_panel(
        [[10.0, 20.0], [11.0, 20.0], [12.0, 20.0], [NAN, 20.0], [NAN, 20.0]],
        closes=[[10.0, 20.0], [11.5, 20.0], [12.5, 20.0], [NAN, 20.0], [NAN, 20.0]],
    )
    result = run(panel, entries=[(0, 0)])
    trade = only_trade(result)
    assert reason(trade) is ExitReason.END_OF_DATA
    assert (trade["exit_bar"], trade["exit_price"]) == (2, 12.5)
    # its cash is back in its pool and stays flat afterwards
    assert result.equity[4, 0] == pytest.approx(result.equity[2, 0])


def test_a_symbol_listed_late_trades_from_its_first_bar() -> None:
    panel = make_panel([[NAN, 20.0], [NAN, 20.0], [10.0, 20.0], [11.0, 20.0], [12.0, 21.0]])
    result = run(panel, entries=[(2, 0), (0, 1)])
    symbol_of = {int(t["symbol"]): t for t in result.trades}
    assert symbol_of[0]["entry_bar"] == 3
    assert symbol_of[1]["entry_bar"] == 1
    assert reason(symbol_of[0]) is ExitReason.OPEN


def test_an_open_trade_is_marked_at_the_last_close_not_closed() -> None:
    panel = make_panel([[10.0], [11.0], [12.0]], closes=[[10.0], [11.0], [15.0]])
    result = run(panel, entries=[(0, 0)], costs={"fee_bps": 10})
    trade = only_trade(result)
    assert reason(trade) is ExitReason.OPEN
    assert trade["exit_price"] == 15.0
    assert trade["exit_fees"] == 0.0
    assert result.equity[-1, 0] == pytest.approx(trade["qty"] * 15.0)


# --- cash pools --------------------------------------------------------------------------


def test_without_shared_cash_each_symbol_gets_an_equal_share() -> None:
    panel = make_panel([[10.0, 20.0], [10.0, 20.0], [10.0, 20.0]])
    result = run(panel, entries=[(0, 0), (0, 1)], init_cash=1000.0)
    assert [t["qty"] for t in result.trades] == pytest.approx([50.0, 25.0])
    assert result.set_equity()[-1, 0] == pytest.approx(1000.0)


def test_a_shared_pool_frees_an_exits_cash_before_the_same_opens_entry() -> None:
    panel = make_panel([[10.0, 10.0], [10.0, 10.0], [20.0, 10.0], [20.0, 10.0]])
    result = run(panel, entries=[(0, 0), (1, 1)], exits=[(1, 0)], shared_cash=True,
                 init_cash=1000.0, sizing={"mode": "equity_fraction", "value": 1.0})  # fmt: skip
    first, second = sorted(result.trades, key=lambda t: int(t["symbol"]))
    assert (first["entry_bar"], first["exit_bar"]) == (1, 2)
    # all the cash was in symbol 0 until its exit at bar 2's open paid 2,000; symbol 1's
    # entry at that same open is sized at the last close's equity (100 x 10 = 1,000)
    assert second["entry_bar"] == 2
    assert second["qty"] == pytest.approx(100.0)
    assert result.refused_orders == 0


def test_parameter_sets_side_by_side_are_independent_runs() -> None:
    panel = make_panel([[10.0], [11.0], [12.0], [13.0]])
    together = run_backtest(
        panel,
        Signals(flags(4, 2, [(0, 0), (1, 1)]), flags(4, 2, [(2, 0)])),
        BacktestConfig(init_cash=500.0),
    )
    alone = [run(panel, entries=[(0, 0)], exits=[(2, 0)], init_cash=500.0),
             run(panel, entries=[(1, 0)], init_cash=500.0)]  # fmt: skip
    assert together.n_sets == 2
    for k in range(2):
        assert together.set_equity()[:, k] == pytest.approx(alone[k].set_equity()[:, 0])


def test_per_set_stops_apply_to_their_own_set_only() -> None:
    panel = make_panel(opens=[[100.0], [100.0], [100.0]], lows=[[100.0], [100.0], [90.0]])
    signals = Signals(flags(3, 2, [(0, 0), (0, 1)]), flags(3, 2))
    result = run_backtest(
        panel, signals, BacktestConfig(), set_stops=[Stops(stop_loss=0.05), Stops()]
    )
    by_set = {int(t["col"]): reason(t) for t in result.trades}
    assert by_set == {0: ExitReason.STOP_LOSS, 1: ExitReason.OPEN}


# --- the look-ahead switch and the benchmark ---------------------------------------------


def test_filling_on_the_signal_bars_close_needs_an_explicit_flag() -> None:
    with pytest.raises(ValidationError, match="look-ahead"):
        BacktestConfig(fill=FillTiming.SIGNAL_CLOSE)


def test_same_bar_fills_trade_at_the_signal_close_and_warn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    panel = make_panel([[10.0], [11.0], [12.0]], closes=[[10.5], [11.5], [12.5]])
    result = run(panel, entries=[(0, 0)], exits=[(1, 0)], fill="signal_close",
                 allow_same_bar_fill=True)  # fmt: skip
    trade = only_trade(result)
    assert (trade["entry_bar"], trade["entry_price"]) == (0, 10.5)
    assert (trade["exit_bar"], trade["exit_price"]) == (1, 11.5)
    assert "backtest.same_bar_fill" in caplog.text


def test_buy_and_hold_splits_the_cash_and_holds_to_the_end() -> None:
    panel = make_panel([[10.0, 20.0], [10.0, 20.0], [12.0, 30.0]])
    config = BacktestConfig(init_cash=1000.0, costs=Costs(fee_bps=0))
    bench = buy_and_hold(panel, config)
    assert [t["qty"] for t in bench.trades] == pytest.approx([50.0, 25.0])
    assert bench.equity[-1, 0] == pytest.approx(50 * 12.0 + 25 * 30.0)


def test_a_sizing_fraction_above_one_is_refused() -> None:
    with pytest.raises(ValidationError, match="leverage"):
        Sizing(mode=SizingMode.EQUITY_FRACTION, value=1.5)


def test_direction_long_ignores_short_signals() -> None:
    panel = make_panel([[10.0], [11.0], [12.0]])
    result = run(panel, short_entries=[(0, 0)], short_exits=[], direction=Direction.LONG)
    assert len(result.trades) == 0
