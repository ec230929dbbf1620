"""Risk check reasons read as people write numbers, whatever scale the Decimals arrive in.

Quantities and prices loaded from the database carry the column's 8 places
(`720.00000000`); a reason must say `720 x 55.53`, in every check.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from models.accounts import RiskLimits
from models.enums import Side
from tasks.execution.risk import AccountState, ProposedOrder, pre_trade_checks

NOW = datetime(2024, 6, 11, 15, 0, tzinfo=UTC)  # a Tuesday, 11:00 in New York
EIGHT = Decimal("0.00000001")
# More than two decimals ending in a zero: `720.00000000`, `55.530` (money keeps `.60`).
TRAILING_ZEROS = re.compile(r"\.\d{2,}0(?!\d)")


def db(text: str) -> Decimal:
    """A Decimal as a Numeric(24, 8) column returns it."""
    return Decimal(text).quantize(EIGHT)


def details(order: ProposedOrder, state: AccountState, limits: RiskLimits) -> dict[str, str]:
    return {r.name: r.detail for r in pre_trade_checks(order, state, limits, NOW)}


def state(position: str = "0", buying_power: str = "100000") -> AccountState:
    return AccountState(
        equity=db("100000"),
        cash=db("100000"),
        buying_power=db(buying_power),
        day_start_equity=db("100000"),
        positions={"AAPL": db(position)},
    )


LIMITS = RiskLimits(max_position_pct=Decimal("0.5"), max_order_notional=Decimal(50_000))


def test_a_database_scaled_order_reads_720_x_55_53() -> None:
    order = ProposedOrder(symbol="AAPL", side=Side.BUY, qty=db("720"), price=db("55.53"))
    got = details(order, state(), LIMITS)
    assert got["max_position_pct"].startswith(
        "AAPL position after order 720 x 55.53 = 39,981.60 <= limit 50,000.00"
    )
    assert got["buying_power"] == "opens 720 x 55.53 = 39,981.60 <= buying power 100,000.00"
    assert got["short_allowed"] == "buy 720 AAPL: position 0 -> 720, not short"


def test_no_check_prints_trailing_zeros_on_any_path() -> None:
    bracket = {"take_profit": db("60.1"), "stop_loss": db("50.25")}
    cases = [
        # a bracket buy that passes everything
        (ProposedOrder(symbol="AAPL", side=Side.BUY, qty=db("720"), price=db("55.53"),
                       legs=2, **bracket), state()),
        # a crossed bracket on a sell that opens a short past the buying power
        (ProposedOrder(symbol="AAPL", side=Side.SELL, qty=db("1500.5"), price=db("55.53"),
                       legs=2, **bracket), state(position="100", buying_power="10")),
        # a sale that only reduces a long
        (ProposedOrder(symbol="AAPL", side=Side.SELL, qty=db("20"), price=db("55.5")),
         state(position="120.25")),
    ]  # fmt: skip
    for order, account in cases:
        for name, detail in details(order, account, LIMITS).items():
            assert not TRAILING_ZEROS.search(detail), f"{name}: {detail}"
    reduced = details(cases[2][0], cases[2][1], LIMITS)
    assert reduced["max_position_pct"].endswith("reduced from 120.25: not limited")
    assert reduced["buying_power"] == "closes 20 of position 120.25: needs no buying power"
    crossed = details(cases[1][0], cases[1][1], LIMITS)["bracket_prices"]
    assert "take_profit 60.1 vs price 55.53" in crossed
    assert "stop_loss 50.25 vs price 55.53" in crossed


def test_a_position_closed_to_zero_reads_0() -> None:
    order = ProposedOrder(symbol="AAPL", side=Side.SELL, qty=db("100"), price=db("10"))
    got = details(order, state(position="100"), LIMITS)
    assert got["short_allowed"] == "sell 100 AAPL: position 100 -> 0, not short"
