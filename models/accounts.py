"""Trading accounts as configured: which broker, how much of the council's book, which limits.

Accounts live in configuration (`ACCOUNTS`, a JSON list), not in the database:
credentials never touch a table, and a limit is changed by editing one file and
restarting, with the change visible in review. The `accounts` table keeps one
row per configured name so orders, fills and positions have a key to hang on.

Amounts are `Decimal`; a float in the configuration is read through `str`, so
`0.1` means one tenth exactly, not 0.1000000000000000055.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, model_validator

from models.enums import BrokerKind
from models.market import Symbol


def _decimal_from_str(value: object) -> object:
    return Decimal(str(value)) if isinstance(value, float) else value


Dec = Annotated[Decimal, BeforeValidator(_decimal_from_str)]


class SizingMethod(StrEnum):
    FIXED_FRACTION = "fixed_fraction"  # notional = equity x allocation x the decision's weight
    VOLATILITY = "volatility"  # that, scaled by target_vol / realised vol, capped at max_scale


class Sizing(BaseModel):
    """How an approved decision's target weight becomes a number of shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: SizingMethod = SizingMethod.FIXED_FRACTION
    target_vol: Dec = Field(Decimal("0.20"), gt=0, description="Annualised, for `volatility`.")
    vol_lookback_days: int = Field(20, ge=2, le=260)
    max_scale: Dec = Field(Decimal("1.5"), gt=0, description="Cap on target_vol / realised vol.")
    min_notional: Dec = Field(Decimal("100"), ge=0, description="Smaller orders are not sent.")
    buying_power_reserve: Dec = Field(
        Decimal("0.01"),
        ge=0,
        lt=1,
        description="Share of buying power sizing leaves unused (slippage, commission): "
        "an order that would need more is cut to the shares that fit.",
    )


class MarketHours(BaseModel):
    """When orders may be sent: weekdays between `open` and `close` in `timezone`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "America/New_York"
    open: time = time(9, 30)
    close: time = time(16, 0)
    weekdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday is 0

    @model_validator(mode="after")
    def _check(self) -> Self:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        if self.open.tzinfo is not None or self.close.tzinfo is not None:
            raise ValueError("open and close are local times in `timezone`, without an offset")
        if not self.open < self.close:
            raise ValueError(f"open {self.open} must be before close {self.close}")
        if not self.weekdays or not self.weekdays <= frozenset(range(7)):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday), at least one")
        return self


class RiskLimits(BaseModel):
    """An account's pre-trade limits. `None` switches a limit off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_pct: Dec | None = Field(
        Decimal("0.25"), gt=0, le=1, description="A position's value after the order / equity."
    )
    max_order_notional: Dec | None = Field(None, gt=0)
    max_open_orders: int | None = Field(50, ge=1, description="Open orders, bracket legs included.")
    max_daily_loss: Dec | None = Field(
        None, gt=0, description="Stop sending once equity is this far below the day's first."
    )
    # Symbols are upper-cased on input, as orders' are: a "tsla" deny entry must deny TSLA.
    allow_symbols: frozenset[Symbol] | None = Field(None, description="Only these, if set.")
    deny_symbols: frozenset[Symbol] = frozenset()
    allow_short: bool = False
    market_hours: MarketHours | None = Field(
        None, description="Send only inside these hours; unset: any time (paper default)."
    )


class AccountConfig(BaseModel):
    """One named account. Alpaca keys fall back to ALPACA_API_KEY / ALPACA_SECRET_KEY."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    broker: BrokerKind = BrokerKind.PAPER
    live: bool = Field(False, description="Alpaca: the live endpoint. Paper accounts never are.")
    allocation: Dec = Field(
        Decimal(1), ge=0, le=10, description="Multiplies every decision's weight for this account."
    )
    sizing: Sizing = Sizing()
    limits: RiskLimits = RiskLimits()
    # paper broker
    starting_cash: Dec = Field(Decimal(100_000), gt=0)
    slippage_bps: Dec = Field(Decimal(5), ge=0)
    commission_per_share: Dec = Field(Decimal(0), ge=0)
    # alpaca
    api_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    base_url: str | None = Field(None, description="Alpaca trading API URL; unset: by `live`.")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Alpaca: per-request timeout.")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.live and self.broker is BrokerKind.PAPER:
            raise ValueError(f"account {self.name}: a paper-broker account cannot be live")
        return self


def default_accounts() -> list[AccountConfig]:
    """One paper account, so a fresh clone trades with no configuration."""
    return [AccountConfig(name="paper")]
