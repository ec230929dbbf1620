"""Pre-trade checks: every check at its boundary, both sides of it.

The defaults below pass every check, so each test changes only what it is
about. `NOW` is Tuesday 2024-06-11 11:00 in New York (EDT, UTC-4).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from models.accounts import MarketHours, RiskLimits
from models.enums import Side
from tasks.execution.risk import (
    CHECKS,
    AccountState,
    CheckResult,
    ProposedOrder,
    checks_record,
    pre_trade_checks,
    rejection_reason,
)

D = Decimal
NOW = datetime(2024, 6, 11, 15, 0, tzinfo=UTC)
NEW_YORK = MarketHours()  # 09:30-16:00 America/New_York, Monday to Friday


def make_order(**overrides: Any) -> ProposedOrder:
    fields: dict[str, Any] = {"symbol": "AAPL", "side": Side.BUY, "qty": D(10), "price": D(100)}
    return ProposedOrder(**(fields | overrides))


def make_state(**overrides: Any) -> AccountState:
    fields: dict[str, Any] = {
        "equity": D(100_000),
        "cash": D(100_000),
        "buying_power": D(100_000),
        "day_start_equity": D(100_000),
    }
    return AccountState(**(fields | overrides))


def run(
    order: ProposedOrder | None = None,
    state: AccountState | None = None,
    limits: RiskLimits | None = None,
    now: datetime = NOW,
) -> dict[str, CheckResult]:
    results = pre_trade_checks(
        order or make_order(), state or make_state(), limits or RiskLimits(), now
    )
    return {r.name: r for r in results}


def check(name: str, **kwargs: Any) -> CheckResult:
    return run(**kwargs)[name]


def failed(results: dict[str, CheckResult]) -> list[str]:
    return [name for name, r in results.items() if not r.passed]


# --- the whole run ------------------------------------------------------------


def test_every_check_runs_in_a_fixed_order() -> None:
    results = pre_trade_checks(make_order(), make_state(), RiskLimits(), NOW)
    assert [r.name for r in results] == [
        "kill_switch",
        "symbol_allowed",
        "market_hours",
        "short_allowed",
        "bracket_prices",
        "max_order_notional",
        "max_position_pct",
        "buying_power",
        "max_open_orders",
        "daily_loss",
    ]
    assert [r.name for r in results] == list(CHECKS)


def test_an_ordinary_order_passes_everything() -> None:
    results = pre_trade_checks(make_order(), make_state(), RiskLimits(), NOW)
    assert all(r.passed for r in results)
    assert rejection_reason(results) is None


def test_failures_do_not_stop_the_later_checks() -> None:
    results = run(
        order=make_order(qty=D(300)),
        state=make_state(halted="operator: stop"),
        limits=RiskLimits(deny_symbols=frozenset({"AAPL"}), max_order_notional=D(10_000)),
    )
    assert failed(results) == [
        "kill_switch",
        "symbol_allowed",
        "max_order_notional",
        "max_position_pct",
    ]
    assert len(results) == len(CHECKS)


def test_the_rejection_reason_joins_the_failed_details_in_check_order() -> None:
    results = pre_trade_checks(
        make_order(qty=D(120)),
        make_state(halted="daily loss breached"),
        RiskLimits(max_order_notional=D(10_000)),
        NOW,
    )
    assert rejection_reason(results) == (
        "trading halted: daily loss breached; order notional 12,000.00 > limit 10,000.00"
    )


def test_the_record_is_json_in_check_order() -> None:
    results = pre_trade_checks(make_order(), make_state(), RiskLimits(), NOW)
    record = checks_record(results)
    assert list(record) == list(CHECKS)
    assert record["max_order_notional"] == {
        "passed": True,
        "detail": "order notional 1,000.00, no limit",
    }
    assert json.loads(json.dumps(record)) == record


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="must be timezone-aware"):
        pre_trade_checks(make_order(), make_state(), RiskLimits(), datetime(2024, 6, 11, 15))


# --- kill switch ----------------------------------------------------------------


def test_a_halted_account_fails_the_kill_switch_with_its_reason() -> None:
    result = check("kill_switch", state=make_state(halted="global: broker incident"))
    assert not result.passed
    assert result.detail == "trading halted: global: broker incident"


def test_an_account_that_is_not_halted_passes_the_kill_switch() -> None:
    assert check("kill_switch").detail == "trading not halted"
    assert check("kill_switch").passed


# --- symbol lists ---------------------------------------------------------------


def test_a_denied_symbol_fails() -> None:
    result = check("symbol_allowed", limits=RiskLimits(deny_symbols=frozenset({"AAPL"})))
    assert (result.passed, result.detail) == (False, "AAPL is on the deny list")


def test_a_symbol_outside_the_allow_list_fails() -> None:
    result = check("symbol_allowed", limits=RiskLimits(allow_symbols=frozenset({"MSFT", "GOOG"})))
    assert (result.passed, result.detail) == (False, "AAPL is not on the allow list (2 symbols)")


def test_a_symbol_on_the_allow_list_passes() -> None:
    result = check("symbol_allowed", limits=RiskLimits(allow_symbols=frozenset({"AAPL"})))
    assert (result.passed, result.detail) == (True, "AAPL allowed (on the allow list, not denied)")


def test_the_deny_list_wins_over_the_allow_list() -> None:
    limits = RiskLimits(allow_symbols=frozenset({"AAPL"}), deny_symbols=frozenset({"AAPL"}))
    assert not check("symbol_allowed", limits=limits).passed


def test_lower_case_symbols_in_the_configuration_still_match() -> None:
    limits = RiskLimits.model_validate({"deny_symbols": ["aapl"]})
    assert not check("symbol_allowed", order=make_order(symbol="aapl"), limits=limits).passed


# --- market hours -----------------------------------------------------------------


def hours_check(now: datetime, hours: MarketHours = NEW_YORK) -> CheckResult:
    return check("market_hours", limits=RiskLimits(market_hours=hours), now=now)


def test_without_market_hours_any_time_passes() -> None:
    result = check("market_hours", now=datetime(2024, 6, 15, 3, 0, tzinfo=UTC))  # a Saturday
    assert (result.passed, result.detail) == (True, "no market hours configured")


@pytest.mark.parametrize(
    ("utc", "passed"),
    [
        (datetime(2024, 6, 11, 13, 29, 59, tzinfo=UTC), False),  # 09:29:59 EDT
        (datetime(2024, 6, 11, 13, 30, tzinfo=UTC), True),  # 09:30 EDT: open
        (datetime(2024, 6, 11, 19, 59, 59, tzinfo=UTC), True),  # 15:59:59 EDT
        (datetime(2024, 6, 11, 20, 0, tzinfo=UTC), False),  # 16:00 EDT: closed
    ],
)
def test_the_open_is_inclusive_and_the_close_exclusive(utc: datetime, passed: bool) -> None:
    assert hours_check(utc).passed is passed


def test_a_pass_and_a_fail_say_the_local_time_and_the_window() -> None:
    assert hours_check(NOW).detail == (
        "Tue 2024-06-11 11:00 America/New_York is within 09:30-16:00"
    )
    assert hours_check(datetime(2024, 6, 11, 20, 0, tzinfo=UTC)).detail == (
        "Tue 2024-06-11 16:00 America/New_York is outside 09:30-16:00"
    )


def test_the_same_utc_time_is_before_the_open_in_winter_and_at_it_in_summer() -> None:
    # US clocks moved forward on Sunday 2024-03-10: 13:30 UTC is 08:30 EST, then 09:30 EDT.
    assert not hours_check(datetime(2024, 3, 8, 13, 30, tzinfo=UTC)).passed
    assert hours_check(datetime(2024, 3, 11, 13, 30, tzinfo=UTC)).passed
    assert hours_check(datetime(2024, 3, 8, 14, 30, tzinfo=UTC)).passed  # 09:30 EST


def test_the_close_moves_in_utc_when_clocks_go_back() -> None:
    # US clocks moved back on Sunday 2024-11-03: 20:30 UTC is 16:30 EDT, then 15:30 EST.
    assert not hours_check(datetime(2024, 11, 1, 20, 30, tzinfo=UTC)).passed
    assert hours_check(datetime(2024, 11, 4, 20, 30, tzinfo=UTC)).passed


def test_a_weekend_in_market_hours_fails() -> None:
    result = hours_check(datetime(2024, 6, 15, 14, 0, tzinfo=UTC))
    assert (result.passed, result.detail) == (
        False,
        "Sat 2024-06-15 10:00 America/New_York: not a trading day",
    )
    assert not hours_check(datetime(2024, 6, 16, 14, 0, tzinfo=UTC)).passed  # Sunday


def test_the_weekday_is_the_exchanges_not_utcs() -> None:
    auckland = MarketHours(timezone="Pacific/Auckland", open=time(10), close=time(16, 45))
    monday_in_auckland = datetime(2024, 6, 9, 22, 0, tzinfo=UTC)  # Sunday in UTC, NZST +12
    result = hours_check(monday_in_auckland, auckland)
    assert (result.passed, result.detail) == (
        True,
        "Mon 2024-06-10 10:00 Pacific/Auckland is within 10:00-16:45",
    )
    saturday_in_auckland = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)  # Friday in UTC
    assert not hours_check(saturday_in_auckland, auckland).passed


def test_configured_weekdays_can_include_the_weekend() -> None:
    every_day = MarketHours(weekdays=frozenset(range(7)))
    assert hours_check(datetime(2024, 6, 15, 14, 0, tzinfo=UTC), every_day).passed


def test_now_in_another_offset_means_the_same_instant() -> None:
    tokyo_clock = NOW.astimezone(timezone(timedelta(hours=9)))
    assert hours_check(tokyo_clock).detail == hours_check(NOW).detail


# --- shorting -------------------------------------------------------------------


def short_check(position: str, side: Side, qty: str, allow_short: bool = False) -> CheckResult:
    return check(
        "short_allowed",
        order=make_order(side=side, qty=D(qty)),
        state=make_state(positions={"AAPL": D(position)}),
        limits=RiskLimits(allow_short=allow_short),
    )


def test_selling_the_whole_position_is_not_a_short() -> None:
    result = short_check("100", Side.SELL, "100")
    assert (result.passed, result.detail) == (True, "sell 100 AAPL: position 100 -> 0, not short")


def test_selling_past_zero_needs_allow_short() -> None:
    result = short_check("100", Side.SELL, "101")
    assert (result.passed, result.detail) == (
        False,
        "sell 101 AAPL: position 100 -> -1: shorting not allowed",
    )
    assert short_check("100", Side.SELL, "101", allow_short=True).passed


def test_selling_with_no_position_is_a_short() -> None:
    assert not short_check("0", Side.SELL, "1").passed


def test_adding_to_a_short_needs_allow_short() -> None:
    assert not short_check("-50", Side.SELL, "10").passed
    assert short_check("-50", Side.SELL, "10", allow_short=True).passed


def test_buying_back_a_short_is_always_allowed() -> None:
    assert short_check("-50", Side.BUY, "80").passed


# --- bracket prices ---------------------------------------------------------------


def bracket_check(side: Side, take_profit: str | None, stop_loss: str | None) -> CheckResult:
    both = take_profit is not None and stop_loss is not None
    order = make_order(
        side=side,
        take_profit=D(take_profit) if take_profit else None,
        stop_loss=D(stop_loss) if stop_loss else None,
        legs=2 if both else 0,
    )
    return check("bracket_prices", order=order, state=make_state(positions={"AAPL": D(100)}))


def test_a_buy_bracket_around_the_price_passes() -> None:
    result = bracket_check(Side.BUY, "110", "95")
    assert (result.passed, result.detail) == (
        True,
        "buy bracket needs stop_loss < price < take_profit: 95 < 100 < 110",
    )


def test_a_buy_whose_take_profit_the_market_has_reached_fails() -> None:
    result = bracket_check(Side.BUY, "100", "95")
    assert not result.passed
    assert result.detail == (
        "buy bracket needs stop_loss < price < take_profit: "
        "take_profit 100 vs price 100: the market is at or above it"
    )
    assert bracket_check(Side.BUY, "100.01", "95").passed


def test_a_buy_whose_stop_the_market_has_reached_fails() -> None:
    result = bracket_check(Side.BUY, "110", "100")
    assert not result.passed
    assert "stop_loss 100 vs price 100: the market is at or below it" in result.detail
    assert bracket_check(Side.BUY, "110", "99.99").passed


def test_a_sell_bracket_is_the_mirror_image() -> None:
    assert bracket_check(Side.SELL, "90", "105").passed
    take_profit_crossed = bracket_check(Side.SELL, "100", "105")
    assert not take_profit_crossed.passed
    assert "take_profit 100 vs price 100: the market is at or below it" in (
        take_profit_crossed.detail
    )
    stop_crossed = bracket_check(Side.SELL, "90", "100")
    assert not stop_crossed.passed
    assert "stop_loss 100 vs price 100: the market is at or above it" in stop_crossed.detail


def test_an_inverted_bracket_reports_both_sides() -> None:
    result = bracket_check(Side.BUY, "95", "110")
    assert not result.passed
    assert "take_profit 95" in result.detail
    assert "stop_loss 110" in result.detail


def test_a_lone_exit_price_fails_the_bracket_check() -> None:
    result = bracket_check(Side.BUY, "110", None)
    assert not result.passed
    assert result.detail.endswith("only take_profit given: needs both")


def test_an_order_without_a_bracket_passes() -> None:
    assert bracket_check(Side.BUY, None, None).detail == "no bracket"


@pytest.mark.parametrize(
    "fields",
    [
        {"legs": 1},
        {"legs": 2},
        {"take_profit": D(110), "stop_loss": D(95)},
        {"take_profit": D(110), "stop_loss": D(95), "legs": 3},
        {"qty": D(0)},
        {"price": D(0)},
        {"qty": 1.5},
    ],
)
def test_an_inconsistent_proposed_order_is_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        make_order(**fields)


# --- order notional -----------------------------------------------------------------


def notional_check(qty: str, price: str = "100", limit: str | None = "10000") -> CheckResult:
    limits = RiskLimits(max_order_notional=D(limit) if limit else None)
    return check("max_order_notional", order=make_order(qty=D(qty), price=D(price)), limits=limits)


def test_an_order_at_the_notional_limit_passes() -> None:
    result = notional_check("100")
    assert (result.passed, result.detail) == (True, "order notional 10,000.00 <= limit 10,000.00")


def test_an_order_over_the_notional_limit_fails_only_that_check() -> None:
    results = run(order=make_order(qty=D(120)), limits=RiskLimits(max_order_notional=D(12_000)))
    assert failed(results) == []
    results = run(order=make_order(qty=D(121)), limits=RiskLimits(max_order_notional=D(12_000)))
    assert failed(results) == ["max_order_notional"]
    assert results["max_order_notional"].detail == "order notional 12,100.00 > limit 12,000.00"


def test_a_sub_cent_excess_is_shown_not_rounded_away() -> None:
    result = notional_check("100", price="100.0001")
    assert (result.passed, result.detail) == (False, "order notional 10,000.01 > limit 10,000.00")
    result = notional_check("1", price="10000.001")
    assert (result.passed, result.detail) == (False, "order notional 10,000.001 > limit 10,000.00")


def test_without_a_notional_limit_any_size_passes() -> None:
    assert notional_check("1000000", limit=None).passed


# --- position size ------------------------------------------------------------------


def position_check(
    position: str, side: Side, qty: str, equity: str = "100000", pct: str | None = "0.25"
) -> CheckResult:
    return check(
        "max_position_pct",
        order=make_order(side=side, qty=D(qty)),
        state=make_state(equity=D(equity), positions={"AAPL": D(position)}),
        limits=RiskLimits(max_position_pct=D(pct) if pct else None, allow_short=True),
    )


def test_a_position_at_the_percentage_limit_passes() -> None:
    result = position_check("150", Side.BUY, "100")  # 250 x 100 = 25,000 of 100,000
    assert result.passed
    assert result.detail == (
        "AAPL position after order 250 x 100 = 25,000.00 <= limit 25,000.00 "
        "(25% of equity 100,000.00)"
    )


def test_a_position_one_share_over_the_limit_fails() -> None:
    result = position_check("150", Side.BUY, "101")
    assert not result.passed
    assert result.detail.startswith("AAPL position after order 251 x 100 = 25,100.00 > limit")


def test_a_short_position_is_measured_by_its_size() -> None:
    assert position_check("0", Side.SELL, "250").passed
    assert not position_check("0", Side.SELL, "251").passed
    assert not position_check("100", Side.SELL, "400").passed  # a flip to -300 is a new short


def test_trimming_a_position_already_over_the_limit_passes() -> None:
    result = position_check("400", Side.SELL, "100")  # 40% -> 30%, still over 25%
    assert result.passed
    assert result.detail.endswith("reduced from 400: not limited")
    assert position_check("-400", Side.BUY, "100").passed
    assert not position_check("400", Side.BUY, "1").passed


def test_with_no_positive_equity_a_new_position_fails() -> None:
    result = position_check("0", Side.BUY, "1", equity="0")
    assert not result.passed
    assert result.detail.endswith("but equity 0.00 is not positive")


def test_without_a_position_limit_any_position_passes() -> None:
    assert position_check("0", Side.BUY, "900", pct=None).passed


# --- buying power -------------------------------------------------------------------


def power_check(position: str, side: Side, qty: str, buying_power: str) -> CheckResult:
    return check(
        "buying_power",
        order=make_order(side=side, qty=D(qty)),
        state=make_state(buying_power=D(buying_power), positions={"AAPL": D(position)}),
    )


def test_opening_exactly_the_buying_power_passes() -> None:
    result = power_check("0", Side.BUY, "50", "5000")
    assert (result.passed, result.detail) == (
        True,
        "opens 50 x 100 = 5,000.00 <= buying power 5,000.00",
    )


def test_opening_more_than_the_buying_power_fails() -> None:
    result = power_check("0", Side.BUY, "50", "4999.99")
    assert (result.passed, result.detail) == (
        False,
        "opens 50 x 100 = 5,000.00 > buying power 4,999.99",
    )


def test_selling_a_long_needs_no_buying_power() -> None:
    result = power_check("100", Side.SELL, "100", "0")
    assert (result.passed, result.detail) == (
        True,
        "closes 100 of position 100: needs no buying power",
    )


def test_buying_back_a_short_needs_no_buying_power() -> None:
    assert power_check("-100", Side.BUY, "60", "0").passed


def test_only_the_part_past_zero_needs_buying_power() -> None:
    # Sell 150 of a 100 long: 100 close, 50 open a short worth 5,000.
    assert power_check("100", Side.SELL, "150", "5000").passed
    result = power_check("100", Side.SELL, "150", "4999")
    assert (result.passed, result.detail) == (
        False,
        "opens 50 x 100 = 5,000.00 > buying power 4,999.00",
    )
    assert not power_check("-100", Side.BUY, "150", "4999").passed


def test_adding_to_a_position_needs_buying_power_for_all_of_it() -> None:
    assert not power_check("100", Side.BUY, "10", "999").passed
    assert not power_check("-100", Side.SELL, "10", "999").passed


# --- open orders --------------------------------------------------------------------


def open_orders_check(open_orders: int, bracket: bool, limit: int | None = 50) -> CheckResult:
    prices = {"take_profit": D(110), "stop_loss": D(90), "legs": 2} if bracket else {}
    return check(
        "max_open_orders",
        order=make_order(**prices),
        state=make_state(open_orders=open_orders),
        limits=RiskLimits(max_open_orders=limit),
    )


def test_a_bracket_counts_its_entry_and_both_legs() -> None:
    result = open_orders_check(47, bracket=True)
    assert (result.passed, result.detail) == (True, "open orders 47 + 1 + 2 legs = 50 <= limit 50")
    result = open_orders_check(48, bracket=True)
    assert (result.passed, result.detail) == (False, "open orders 48 + 1 + 2 legs = 51 > limit 50")


def test_a_plain_order_counts_one() -> None:
    assert open_orders_check(49, bracket=False).passed
    assert not open_orders_check(50, bracket=False).passed


def test_without_an_open_order_limit_any_count_passes() -> None:
    assert open_orders_check(10_000, bracket=True, limit=None).passed


# --- daily loss ---------------------------------------------------------------------


def loss_check(
    equity: str, start: str | None = "100000", limit: str | None = "5000"
) -> CheckResult:
    return check(
        "daily_loss",
        state=make_state(equity=D(equity), day_start_equity=D(start) if start else None),
        limits=RiskLimits(max_daily_loss=D(limit) if limit else None),
    )


def test_a_loss_just_inside_the_limit_passes() -> None:
    result = loss_check("95000.01")
    assert (result.passed, result.detail) == (
        True,
        "loss today 4,999.99 (from 100,000.00 to 95,000.01) < limit 5,000.00",
    )


def test_a_loss_at_the_limit_fails() -> None:
    result = loss_check("95000")
    assert (result.passed, result.detail) == (
        False,
        "loss today 5,000.00 (from 100,000.00 to 95,000.00) >= limit 5,000.00",
    )
    assert not loss_check("90000").passed


def test_a_gain_passes_the_daily_loss_check() -> None:
    assert loss_check("101000").passed


def test_the_daily_loss_check_needs_a_limit_and_a_day_start() -> None:
    assert loss_check("1", limit=None).detail == "no daily loss limit"
    assert loss_check("1", start=None).detail == "no day-start equity known yet"
    assert loss_check("1", start=None).passed


def test_a_daily_loss_stops_even_an_order_that_reduces_a_position() -> None:
    results = run(
        order=make_order(side=Side.SELL, qty=D(10)),
        state=make_state(equity=D(90_000), positions={"AAPL": D(100)}),
        limits=RiskLimits(max_daily_loss=D(5_000)),
    )
    assert failed(results) == ["daily_loss"]
