"""An approved council decision becomes one trade intent per account: sized, checked, stored.

The intent row is written once, with its size, every pre-trade check's result
and the verdict, in one transaction keyed by (decision, account). A re-run
finds it and neither re-sizes nor re-checks a passed intent: what was decided
is what was recorded, and an order is only ever sent for an intent whose
stored checks all passed ("risk before money"). A refused intent was never
sent, so a later run judges it again (after `trading resume`, a raised
limit); the earlier verdicts stay in its `risk_checks["history"]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.bars import bars_as_of
from models.accounts import AccountConfig
from models.council import CouncilDecision, Pitch
from models.enums import DecisionAction, DecisionStatus, IntentStatus, OrderType, Side, TimeInForce
from models.trading import TradeIntent
from tasks.execution.risk import (
    AccountState,
    ProposedOrder,
    checks_record,
    pre_trade_checks,
    rejection_reason,
)
from tasks.execution.sizing import SizingResult, size_order

CENT = Decimal("0.01")


@dataclass(frozen=True)
class MarketView:
    """What the account and the market look like when an intent is planned."""

    state: AccountState
    price: Decimal  # the reference price: the last close known at as_of
    as_of: datetime
    now: datetime


def intent_key(decision_id: int, account_id: int) -> str:
    return f"decision-{decision_id}-account-{account_id}"


def existing_intent(session: Session, decision_id: int, account_id: int) -> TradeIntent | None:
    key = intent_key(decision_id, account_id)
    return session.scalar(select(TradeIntent).where(TradeIntent.idempotency_key == key))


def tradable(decision: CouncilDecision) -> bool:
    """Approved, and a buy or a sell: a hold or a rejected decision has nothing to execute."""
    return decision.status is DecisionStatus.APPROVED and decision.action is not DecisionAction.HOLD


def plan_intent(
    session: Session,
    decision: CouncilDecision,
    account: AccountConfig,
    account_id: int,
    view: MarketView,
) -> TradeIntent:
    """Size the decision for this account, run every pre-trade check, store the verdict."""
    found = existing_intent(session, decision.id, account_id)
    if found is not None and found.status is not IntentStatus.RISK_REJECTED:
        return found
    pitch = session.get(Pitch, decision.pitch_id) if decision.pitch_id else None
    side = Side.BUY if decision.action is DecisionAction.BUY else Side.SELL
    take_profit = to_cents(pitch.take_profit) if pitch else None
    stop_loss = to_cents(pitch.stop_loss) if pitch else None
    closes = [
        Decimal(str(b.close))
        for b in bars_as_of(
            session, [decision.symbol], view.as_of, account.sizing.vol_lookback_days + 1
        )
    ]
    sizing, record, reason = size_and_check(
        symbol=decision.symbol,
        side=side,
        weight=Decimal(decision.target_weight),
        take_profit=take_profit,
        stop_loss=stop_loss,
        account=account,
        view=view,
        closes=closes,
    )
    if found is not None:  # refused before, so never sent: judged again, the old verdict kept
        history = [*found.risk_checks.get("history", []), _verdict(found)]
        found.qty = sizing.qty
        found.take_profit, found.stop_loss = take_profit, stop_loss
        found.status = IntentStatus.APPROVED if reason is None else IntentStatus.RISK_REJECTED
        found.risk_checks = {**record, "history": history}
        found.reject_reason = reason
        session.flush()
        return found
    intent = TradeIntent(
        idempotency_key=intent_key(decision.id, account_id),
        decision_id=decision.id,
        account_id=account_id,
        symbol=decision.symbol,
        side=side,
        qty=sizing.qty,
        order_type=OrderType.MARKET,
        take_profit=take_profit,
        stop_loss=stop_loss,
        time_in_force=TimeInForce.GTC,  # a bracket's exits must outlive the day
        status=IntentStatus.APPROVED if reason is None else IntentStatus.RISK_REJECTED,
        risk_checks=record,
        reject_reason=reason,
    )
    session.add(intent)
    session.flush()
    return intent


def size_and_check(
    *,
    symbol: str,
    side: Side,
    weight: Decimal,
    take_profit: Decimal | None,
    stop_loss: Decimal | None,
    account: AccountConfig,
    view: MarketView,
    closes: Sequence[Decimal],
) -> tuple[SizingResult, dict[str, object], str | None]:
    """Size an order for `account` as `view` sees it and run every pre-trade check: (the
    sizing, the record an intent keeps of both, why it may not be sent or None). Exit prices
    come in whole cents (`to_cents`). The one judgement live execution and the council
    backtest's book (tasks/council_backtest/book.py) both make."""
    held = view.state.positions.get(symbol, Decimal(0))
    sizing = size_order(
        weight=weight,
        price=view.price,
        equity=view.state.equity,
        account=account,
        closes=closes,
        buying_power=view.state.buying_power,
        closable=max(Decimal(0), held if side is Side.SELL else -held),
    )
    record: dict[str, object] = {"sizing": sizing.detail(), "price": str(view.price)}
    if sizing.skipped is not None:
        return sizing, record, f"sizing: {sizing.skipped}"
    proposed = ProposedOrder(
        symbol=symbol,
        side=side,
        qty=sizing.qty,
        price=view.price,
        take_profit=take_profit,
        stop_loss=stop_loss,
        legs=2 if take_profit is not None and stop_loss is not None else 0,
    )
    results = pre_trade_checks(proposed, view.state, account.limits, view.now)
    record["checks"] = checks_record(results)
    return sizing, record, rejection_reason(results)


def _verdict(intent: TradeIntent) -> dict[str, object]:
    checks = {k: v for k, v in intent.risk_checks.items() if k != "history"}
    return {"at": intent.updated_at.isoformat(), "reason": intent.reject_reason, **checks}


def to_cents(value: Decimal | None) -> Decimal | None:
    """Exit prices in whole cents, as US equity venues take them."""
    return None if value is None else Decimal(value).quantize(CENT, rounding=ROUND_HALF_EVEN)
