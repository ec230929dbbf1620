"""Sizing: a target weight to whole shares, fixed-fraction or volatility-scaled.

The exact volatility cases use a synthetic series with a known answer: 64
daily returns alternating +a and -a have sample stdev a * sqrt(64/63), so the
annualised vol is a * sqrt(252 * 64 / 63) = 16a exactly. Real AAPL closes from
the shared data set check the same code against numpy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from models.accounts import AccountConfig, Sizing, SizingMethod
from tasks.execution.sizing import SizingResult, size_order
from tests.conftest import SHARED_DATA

D = Decimal
DAILY = SHARED_DATA / "sp500_daily_2015_2020.csv.gz"


def make_account(
    method: SizingMethod = SizingMethod.FIXED_FRACTION, allocation: str = "1", **sizing: Any
) -> AccountConfig:
    return AccountConfig(
        name="test", allocation=D(allocation), sizing=Sizing(method=method, **sizing)
    )


def vol_account(**sizing: Any) -> AccountConfig:
    sizing.setdefault("vol_lookback_days", 64)
    return make_account(SizingMethod.VOLATILITY, **sizing)


def alternating_closes(a: str, returns: int = 64, start: str = "100") -> list[Decimal]:
    """Closes whose daily returns alternate +a, -a: annualised vol 16a over 64 returns."""
    closes = [D(start)]
    for i in range(returns):
        closes.append(closes[-1] * (1 + D(a) if i % 2 == 0 else 1 - D(a)))
    return closes


def size(
    weight: str = "0.1",
    price: str = "100",
    equity: str = "100000",
    account: AccountConfig | None = None,
    closes: Sequence[Decimal] = (),
) -> SizingResult:
    return size_order(
        weight=D(weight),
        price=D(price),
        equity=D(equity),
        account=account or make_account(),
        closes=closes,
    )


# --- fixed fraction -----------------------------------------------------------


def test_fixed_fraction_buys_equity_times_weight_in_whole_shares() -> None:
    result = size(weight="0.1", price="100", equity="100000")
    assert result.qty == 100
    assert result.notional == D("10000")
    assert result.method is SizingMethod.FIXED_FRACTION
    assert (result.scale, result.realised_vol, result.skipped) == (None, None, None)


def test_the_account_allocation_multiplies_the_weight() -> None:
    assert size(account=make_account(allocation="0.5")).qty == 50
    assert size(account=make_account(allocation="2")).qty == 200


def test_quantity_is_rounded_down_never_up() -> None:
    result = size(weight="0.1", price="333", equity="100000")  # 10,000 / 333 = 30.03
    assert result.qty == 30
    assert result.notional == D("9990")


def test_a_target_just_short_of_a_share_does_not_round_up() -> None:
    # 9,999.99 / 100 = 99.9999: a share more would exceed the target by a cent.
    result = size(weight="1", price="100", equity="9999.99")
    assert result.qty == 99


def test_a_target_that_buys_exactly_whole_shares_keeps_every_share() -> None:
    assert size(weight="0.3", price="30", equity="1000").qty == 10  # 300 / 30 = 10 exactly
    assert (
        size(weight="1", price="0.07", equity="0.7", account=make_account(min_notional=0)).qty == 10
    )


def test_fixed_fraction_ignores_closes() -> None:
    assert size(closes=[D(1), D(2)]).qty == size().qty


# --- skipping ---------------------------------------------------------------


def test_an_order_below_the_minimum_notional_is_skipped_with_the_numbers() -> None:
    result = size(weight="0.08", price="20", equity="1000")  # 4 shares, 80.00
    assert result.qty == 0
    assert result.notional == 0
    assert result.skipped == "notional 80.00 below minimum 100.00"


def test_an_order_exactly_at_the_minimum_notional_is_sent() -> None:
    result = size(weight="0.1", price="20", equity="1000")  # 5 shares, 100.00
    assert result.qty == 5
    assert result.skipped is None


def test_a_target_below_one_share_is_skipped() -> None:
    result = size(weight="0.004", price="500", equity="100000")  # 400.00 of a 500.00 share
    assert result.qty == 0
    assert result.skipped == "target notional 400.00 buys no whole share at 500"


@pytest.mark.parametrize(("weight", "equity"), [("0", "100000"), ("0.5", "0")])
def test_a_zero_weight_or_zero_equity_sizes_nothing(weight: str, equity: str) -> None:
    result = size(weight=weight, equity=equity)
    assert result.qty == 0
    assert result.skipped == "target notional 0.00 buys no whole share at 100"


@pytest.mark.parametrize(
    ("weight", "price", "equity", "message"),
    [
        ("0.1", "0", "1000", "price 0 must be positive"),
        ("0.1", "-1", "1000", "price -1 must be positive"),
        ("0.1", "100", "-0.01", "equity -0.01 must not be negative"),
        ("-0.01", "100", "1000", "weight -0.01 must be between 0 and 1"),
        ("1.01", "100", "1000", "weight 1.01 must be between 0 and 1"),
    ],
)
def test_bad_input_is_refused(weight: str, price: str, equity: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        size(weight=weight, price=price, equity=equity)


def test_a_full_weight_is_accepted() -> None:
    assert size(weight="1").qty == 1000


# --- volatility -------------------------------------------------------------


def test_volatility_sizing_scales_by_target_over_realised_vol() -> None:
    result = size(account=vol_account(target_vol=D("0.20")), closes=alternating_closes("0.025"))
    assert result.realised_vol == D("0.400000")
    assert result.scale == D("0.500000")
    assert result.qty == 50  # 10,000 x 0.5 / 100
    assert result.method is SizingMethod.VOLATILITY


def test_volatility_sizing_uses_the_sample_stdev() -> None:
    # With the population stdev (ddof=0) this series would read 0.4 * sqrt(63/64) = 0.3969.
    result = size(account=vol_account(), closes=alternating_closes("0.025"))
    assert result.realised_vol == D("0.400000")


def test_a_calm_symbol_is_scaled_up_within_the_cap() -> None:
    result = size(account=vol_account(target_vol=D("0.20")), closes=alternating_closes("0.01"))
    assert result.realised_vol == D("0.160000")
    assert result.scale == D("1.250000")
    assert result.qty == 125


def test_the_scale_is_capped_at_max_scale() -> None:
    account = vol_account(target_vol=D("0.20"), max_scale=D("1.5"))
    result = size(account=account, closes=alternating_closes("0.00625"))  # vol 0.10: ratio 2
    assert result.realised_vol == D("0.100000")
    assert result.scale == D("1.5")
    assert result.qty == 150


def test_the_scale_is_rounded_down() -> None:
    # 0.20 / 0.24 = 0.8333...: stored as 0.833333, never 0.833334.
    result = size(account=vol_account(target_vol=D("0.20")), closes=alternating_closes("0.015"))
    assert result.realised_vol == D("0.240000")
    assert result.scale == D("0.833333")
    assert result.qty == 83


def test_too_few_closes_skips_instead_of_guessing() -> None:
    closes = alternating_closes("0.01", returns=20)  # 21 closes
    account = vol_account(vol_lookback_days=20)
    short = size(account=account, closes=closes[1:])
    assert short.qty == 0
    assert short.skipped == "volatility needs 21 closes for 20 returns, got 20"
    assert (short.scale, short.realised_vol) == (None, None)
    assert size(account=account, closes=closes).qty > 0


def test_a_flat_series_has_no_volatility_to_scale_by() -> None:
    result = size(account=vol_account(vol_lookback_days=20), closes=[D("50")] * 21)
    assert result.qty == 0
    assert result.skipped == "realised volatility over 20 days is 0.000000: nothing to scale by"


def test_only_the_last_lookback_plus_one_closes_count() -> None:
    closes = alternating_closes("0.025")
    older = [D("1"), D("900"), D("3")]
    account = vol_account()
    assert size(account=account, closes=older + closes) == size(account=account, closes=closes)


def test_a_non_positive_close_inside_the_window_is_refused() -> None:
    closes = alternating_closes("0.01", returns=20)
    closes[10] = D(0)
    with pytest.raises(ValueError, match="closes must be positive, got 0"):
        size(account=vol_account(vol_lookback_days=20), closes=closes)


def test_the_volatility_record_survives_a_later_minimum_notional_skip() -> None:
    account = vol_account(target_vol=D("0.20"), min_notional=D(200))
    result = size(equity="3000", account=account, closes=alternating_closes("0.025"))
    assert result.qty == 0
    assert result.skipped == "notional 100.00 below minimum 200.00"  # 300 x 0.5 buys one share
    assert (result.realised_vol, result.scale) == (D("0.400000"), D("0.500000"))


# --- buying power ------------------------------------------------------------


def test_an_order_that_fits_the_buying_power_is_not_cut() -> None:
    result = size_order(
        weight=D("0.1"),
        price=D(100),
        equity=D(100000),
        account=make_account(),
        buying_power=D(20000),
    )
    assert (result.qty, result.capped, result.skipped) == (D(100), None, None)


def test_an_account_short_of_buying_power_buys_the_shares_that_fit_less_the_reserve() -> None:
    """10,000 wanted, 5,000 of power, 1 % kept back: 4,950 buys 49 shares at 100."""
    result = size_order(
        weight=D("0.1"),
        price=D("100.00000000"),
        equity=D(100000),
        account=make_account(),
        buying_power=D(5000),
    )
    assert result.qty == 49
    assert result.notional == D(4900)
    assert result.skipped is None
    assert result.capped == "buying power 5,000.00 (less 1% reserve) opens 49 of 100 shares at 100"
    assert result.detail()["capped"] == result.capped


def test_shares_that_close_a_position_need_no_buying_power() -> None:
    """Selling 100 with 80 held long: 80 close, only the 20 that open a short need power."""
    result = size_order(
        weight=D("0.1"),
        price=D(100),
        equity=D(100000),
        account=make_account(),
        buying_power=D(1000),
        closable=D(80),
    )
    assert result.qty == 80 + 9  # 990 of usable power opens 9 shares
    assert result.capped is not None


def test_no_buying_power_left_is_a_skip_that_says_so() -> None:
    result = size_order(
        weight=D("0.1"),
        price=D(100),
        equity=D(100000),
        account=make_account(),
        buying_power=D(-50),
    )
    assert result.qty == 0
    assert result.skipped == "buying power -50.00 (less 1% reserve) opens 0 of 100 shares at 100"


def test_a_cut_below_the_minimum_notional_is_skipped_not_sent() -> None:
    result = size_order(
        weight=D("0.1"),
        price=D(30),
        equity=D(100000),
        account=make_account(),
        buying_power=D(90),
    )
    assert result.qty == 0
    assert result.skipped == "notional 60.00 below minimum 100.00"


def test_the_reserve_is_the_accounts_to_set() -> None:
    account = make_account(buying_power_reserve=D(0))
    result = size_order(
        weight=D("0.1"), price=D(100), equity=D(100000), account=account, buying_power=D(5000)
    )
    assert result.qty == 50
    assert result.capped == "buying power 5,000.00 (no reserve) opens 50 of 100 shares at 100"
    with pytest.raises(ValidationError):
        make_account(buying_power_reserve=D(1))


# --- the record --------------------------------------------------------------


def test_detail_is_json_of_plain_strings_without_unset_fields() -> None:
    result = size(equity="1E+5")
    assert result.detail() == {"qty": "100", "notional": "10000", "method": "fixed_fraction"}
    json.dumps(result.detail())


def test_detail_of_a_volatility_skip_carries_everything() -> None:
    account = vol_account(target_vol=D("0.20"))
    detail = size(equity="1000", account=account, closes=alternating_closes("0.025")).detail()
    assert detail == {
        "qty": "0",
        "notional": "0",
        "method": "volatility",
        "scale": "0.500000",
        "realised_vol": "0.400000",
        "skipped": "target notional 50.00 buys no whole share at 100",
    }


def test_a_result_is_frozen_and_refuses_fractional_shares() -> None:
    result = size()
    with pytest.raises(ValidationError):
        result.qty = D(1)  # type: ignore[misc]
    with pytest.raises(ValidationError, match="whole number of shares"):
        SizingResult(qty=D("1.5"), notional=D(150), method=SizingMethod.FIXED_FRACTION)


# --- real closes --------------------------------------------------------------


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    if not DAILY.exists():
        pytest.skip(f"shared data not found: {DAILY}")
    return pd.read_csv(DAILY, usecols=["date", "symbol", "close"], dtype={"close": str})


def raw_closes(daily: pd.DataFrame, symbol: str, as_of: str) -> list[Decimal]:
    """Raw closes (not adj_close: that knows the future) at or before `as_of`, oldest first."""
    rows = daily[(daily.symbol == symbol) & (daily.date <= as_of)]
    return [D(c) for c in rows.close]


@pytest.fixture(scope="module")
def aapl_2019(daily: pd.DataFrame) -> list[Decimal]:
    return raw_closes(daily, "AAPL", "2019-12-31")


def test_realised_vol_on_real_closes_matches_numpy(aapl_2019: list[Decimal]) -> None:
    closes = np.array([float(c) for c in aapl_2019[-21:]])
    returns = np.diff(closes) / closes[:-1]
    expected = float(np.std(returns, ddof=1)) * math.sqrt(252)

    result = size(account=vol_account(vol_lookback_days=20), closes=aapl_2019)

    assert result.realised_vol is not None
    assert abs(float(result.realised_vol) - expected) <= 1e-6
    assert D("0.05") < result.realised_vol < D("0.60")  # a plausible large-cap vol


def test_real_closes_size_to_the_largest_whole_position_under_the_target(
    aapl_2019: list[Decimal],
) -> None:
    price = aapl_2019[-1]
    account = vol_account(vol_lookback_days=20, target_vol=D("0.20"))
    result = size_order(
        weight=D("0.1"), price=price, equity=D(250000), account=account, closes=aapl_2019
    )
    assert result.scale is not None
    target = D(25000) * result.scale
    assert result.qty > 0
    assert result.qty * price <= target < (result.qty + 1) * price
    assert result.notional == result.qty * price


def test_the_zero_close_in_the_shared_data_is_refused_not_sized(daily: pd.DataFrame) -> None:
    """CBS has a bar with zero prices on 2019-12-04, a real defect of the source."""
    closes = raw_closes(daily, "CBS", "2019-12-04")
    assert closes[-1] == 0
    with pytest.raises(ValueError, match="closes must be positive, got 0"):
        size(account=vol_account(vol_lookback_days=20), closes=closes)
