"""Trades a person asks for (in chat, by approving a pitch), and what became of each.

The council's trades are sized from target weights; a person names the
quantity. Both end as `TradeIntent` rows checked by the same pre-trade
checks (tasks/execution/risk.py), and only a passed intent is ever sent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.enums import Side
from models.market import Symbol


class ManualTrade(BaseModel):
    """A market order in whole shares, with an optional bracket (both exits or neither)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: Symbol
    side: Side
    qty: Decimal = Field(gt=0, le=1_000_000, decimal_places=0, description="Whole shares.")
    take_profit: Decimal | None = Field(None, gt=0, le=10_000_000, decimal_places=2)
    stop_loss: Decimal | None = Field(None, gt=0, le=10_000_000, decimal_places=2)
    reason: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _both_exits_or_neither(self) -> Self:
        if (self.take_profit is None) != (self.stop_loss is None):
            raise ValueError("a bracket needs both take_profit and stop_loss, or neither")
        return self


class IntentOutcome(BaseModel):
    """Where one trade stands after it was asked for or executed."""

    intent_id: int | None = Field(description="None when no intent could be made (no price).")
    account: str
    symbol: str
    side: Side
    qty: Decimal
    status: str = Field(description="The intent's status (pending_approval, risk_rejected, ...).")
    reason: str | None = None
    order_status: str | None = Field(None, description="Its entry order's status, once sent.")
