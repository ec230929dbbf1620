"""Trades a person asked for: checked like the council's, then queued or executed.

Two entry points, both idempotent:

* `place_manual_trades` makes one intent per trade, keyed by `source` and the
  trade's position (`chat-17-0-account-1`), so a retried request finds what
  the first attempt wrote. Each intent is checked at once against the account
  as the broker reports it; a failed check ends it `risk_rejected`, never
  sent. A passed one waits `pending_approval`, or with `execute` is sent now.
* `execute_pending` sends intents that were waiting, after checking them
  again: the account and the market have moved since they were asked for.

Nothing here sizes a trade (the person named the quantity) and nothing here
knows where the request came from beyond its `source` key: chat, an approved
pitch and the API's trade approval all come through the same checks and the
same exactly-once submit as the council (tasks/execution/submit.py).

Prices are the last close known now (a paper broker then fills at it, like
`aitrader council execute --now`); a symbol with no stored bar has no price
and no intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import read_sessions_of, unit_of_work
from db.queries.accounts import account_by_name, ensure_account
from db.queries.trading import latest_snapshot
from models.accounts import AccountConfig
from models.base import utcnow
from models.council import Pitch
from models.enums import IntentStatus, OrderLeg, OrderType, TimeInForce
from models.errors import ConflictError, NotFoundError
from models.intents import IntentOutcome, ManualTrade
from models.trading import Account, Order, TradeIntent
from services.brokers import Broker, PaperBroker
from services.brokers.factory import open_broker
from services.bus import Bus
from services.settings import Settings
from tasks.execution.account_run import (
    account_state,
    book,
    execute_at_last_close,
    reconcile_pending,
    submit_intent,
)
from tasks.execution.paper_feed import feed_bars, last_close
from tasks.execution.risk import (
    AccountState,
    ProposedOrder,
    checks_record,
    pre_trade_checks,
    rejection_reason,
)
from tasks.execution.sizing import size_order

NO_PRICE = "no_price"


def trading_account(settings: Settings, name: str | None = None) -> AccountConfig:
    """The named account, else CHAT_ACCOUNT, else the first configured one."""
    if name is not None:
        return settings.account(name)
    if settings.chat_account is not None:
        return settings.account(settings.chat_account)
    return settings.accounts[0]


async def place_manual_trades(
    sessions: sessionmaker[Session],
    settings: Settings,
    trades: Sequence[ManualTrade],
    *,
    source: str,
    execute: bool,
    account: AccountConfig | None = None,
    now: datetime | None = None,
    bus: Bus | None = None,
) -> list[IntentOutcome]:
    """One checked intent per trade on `account`; sent now if `execute`, else left pending."""
    account = account or trading_account(settings)
    now = now or utcnow()
    if not trades:
        return []
    async with open_broker(account, settings) as broker:
        account_id = await _prepare(sessions, account, broker, {t.symbol for t in trades}, now)
        results: list[tuple[int | None, ManualTrade]] = []
        sent: set[str] = set()
        for index, trade in enumerate(trades):
            key = f"{source}-{index}-account-{account_id}"
            state = await account_state(sessions, account, account_id, broker, now)
            with unit_of_work(sessions) as session:
                intent = _intent_for(session, key, trade, account, account_id, state, now)
                go = (
                    intent is not None
                    and execute
                    and intent.status is IntentStatus.PENDING_APPROVAL
                )
                if go and intent is not None:
                    intent.status = IntentStatus.APPROVED
                intent_id = intent.id if intent is not None else None
            results.append((intent_id, trade))
            sending = go and intent_id is not None
            if sending and await submit_intent(sessions, broker, intent_id or 0, account.name):
                sent.add(trade.symbol)
        await _finish(sessions, broker, account_id, sent, now, bus)
    with read_sessions_of(sessions)() as session:
        return [_outcome(session, account.name, intent_id, trade) for intent_id, trade in results]


async def execute_pending(
    sessions: sessionmaker[Session],
    settings: Settings,
    intent_ids: Sequence[int],
    *,
    now: datetime | None = None,
    bus: Bus | None = None,
) -> list[IntentOutcome]:
    """Check the waiting intents again and send the ones that pass, account by account.

    Unknown ids raise `NotFoundError`, intents not waiting for approval
    `ConflictError`, before anything is checked or sent.
    """
    now = now or utcnow()
    by_account: dict[str, list[int]] = {}
    with read_sessions_of(sessions)() as session:
        for intent_id in dict.fromkeys(intent_ids):
            intent = session.get(TradeIntent, intent_id)
            if intent is None:
                raise NotFoundError(f"no trade intent {intent_id}")
            if intent.status is not IntentStatus.PENDING_APPROVAL:
                raise ConflictError(
                    f"trade intent {intent_id} is {intent.status}, not pending_approval"
                )
            owner = session.get(Account, intent.account_id)
            assert owner is not None
            by_account.setdefault(owner.name, []).append(intent_id)
    outcomes: list[IntentOutcome] = []
    for name, ids in by_account.items():
        account = settings.account(name)
        async with open_broker(account, settings) as broker:
            with read_sessions_of(sessions)() as session:
                symbols = {i.symbol for i in _intents(session, ids)}
            account_id = await _prepare(sessions, account, broker, symbols, now)
            sent: set[str] = set()
            for intent_id in ids:
                state = await account_state(sessions, account, account_id, broker, now)
                with unit_of_work(sessions) as session:
                    passed, symbol = _recheck(session, intent_id, account, state, now)
                if passed and await submit_intent(sessions, broker, intent_id, account.name):
                    sent.add(symbol)
            await _finish(sessions, broker, account_id, sent, now, bus)
        with read_sessions_of(sessions)() as session:
            outcomes.extend(_outcome(session, name, i, None) for i in ids)
    return outcomes


async def _prepare(
    sessions: sessionmaker[Session],
    account: AccountConfig,
    broker: Broker,
    symbols: set[str],
    now: datetime,
) -> int:
    """The account's row id, its pending orders settled, a paper broker brought up to now."""
    with unit_of_work(sessions) as session:
        account_id = ensure_account(session, account).id
    await reconcile_pending(sessions, broker, account_id, account.name)
    if isinstance(broker, PaperBroker):
        held = {p.symbol for p in await broker.positions()}
        working = {o.symbol for o in await broker.list_orders(open_only=True)}
        with read_sessions_of(sessions)() as session:
            feed_bars(session, broker, held | working | symbols, now)
    return account_id


async def _finish(
    sessions: sessionmaker[Session],
    broker: Broker,
    account_id: int,
    sent: set[str],
    now: datetime,
    bus: Bus | None,
) -> None:
    if isinstance(broker, PaperBroker) and sent:
        execute_at_last_close(sessions, broker, sent, now)
    await book(sessions, broker, account_id, now, bus)


def _intent_for(
    session: Session,
    key: str,
    trade: ManualTrade,
    account: AccountConfig,
    account_id: int,
    state: AccountState,
    now: datetime,
) -> TradeIntent | None:
    """The intent stored under `key`, or a new one with its checks; None without a price."""
    found = session.scalar(select(TradeIntent).where(TradeIntent.idempotency_key == key))
    if found is not None:
        return found
    priced = last_close(session, trade.symbol, now)
    if priced is None:
        return None
    record, reason = _checks(trade, priced[0], account, state, now)
    intent = TradeIntent(
        idempotency_key=key,
        decision_id=None,
        account_id=account_id,
        symbol=trade.symbol,
        side=trade.side,
        qty=trade.qty,
        order_type=OrderType.MARKET,
        take_profit=trade.take_profit,
        stop_loss=trade.stop_loss,
        time_in_force=TimeInForce.GTC if trade.take_profit is not None else TimeInForce.DAY,
        status=IntentStatus.PENDING_APPROVAL if reason is None else IntentStatus.RISK_REJECTED,
        risk_checks={**record, "requested": trade.model_dump(mode="json")},
        reject_reason=reason,
    )
    session.add(intent)
    session.flush()
    return intent


def _recheck(
    session: Session, intent_id: int, account: AccountConfig, state: AccountState, now: datetime
) -> tuple[bool, str]:
    """Judge a waiting intent again; approved if it passes, risk_rejected if not."""
    intent = session.get(TradeIntent, intent_id)
    assert intent is not None
    priced = last_close(session, intent.symbol, now)
    trade = ManualTrade(
        symbol=intent.symbol,
        side=intent.side,
        qty=intent.qty,
        take_profit=intent.take_profit,
        stop_loss=intent.stop_loss,
    )
    if priced is None:
        record: dict[str, object] = {}
        reason: str | None = f"{intent.symbol}: no price known at {now:%Y-%m-%d %H:%M} UTC"
    else:
        record, reason = _checks(trade, priced[0], account, state, now)
    history = [*intent.risk_checks.get("history", []), _verdict(intent)]
    intent.risk_checks = {**intent.risk_checks, **record, "history": history}
    intent.status = IntentStatus.APPROVED if reason is None else IntentStatus.RISK_REJECTED
    intent.reject_reason = reason
    return reason is None, intent.symbol


def _checks(
    trade: ManualTrade, price: Decimal, account: AccountConfig, state: AccountState, now: datetime
) -> tuple[dict[str, object], str | None]:
    proposed = ProposedOrder(
        symbol=trade.symbol,
        side=trade.side,
        qty=trade.qty,
        price=price,
        take_profit=trade.take_profit,
        stop_loss=trade.stop_loss,
        legs=2 if trade.take_profit is not None else 0,
    )
    results = pre_trade_checks(proposed, state, account.limits, now)
    return {"price": str(price), "checks": checks_record(results)}, rejection_reason(results)


def _verdict(intent: TradeIntent) -> dict[str, object]:
    checks = {k: v for k, v in intent.risk_checks.items() if k not in ("history", "requested")}
    return {
        "at": intent.updated_at.isoformat(),
        "status": str(intent.status),
        "reason": intent.reject_reason,
        **checks,
    }


def _intents(session: Session, ids: Sequence[int]) -> list[TradeIntent]:
    return list(session.scalars(select(TradeIntent).where(TradeIntent.id.in_(list(ids)))))


def outcomes_of_source(session: Session, source: str) -> list[IntentOutcome]:
    """Where the trades asked for under `source` stand now, in the order they were asked."""
    rows = session.execute(
        select(TradeIntent.id, Account.name)
        .join(Account, Account.id == TradeIntent.account_id)
        .where(TradeIntent.idempotency_key.like(f"{source}-%"))
        .order_by(TradeIntent.id)
    ).all()
    return [_outcome(session, account, intent_id, None) for intent_id, account in rows]


def _outcome(
    session: Session, account: str, intent_id: int | None, trade: ManualTrade | None
) -> IntentOutcome:
    if intent_id is None:
        assert trade is not None
        return IntentOutcome(
            intent_id=None,
            account=account,
            symbol=trade.symbol,
            side=trade.side,
            qty=trade.qty,
            status=NO_PRICE,
            reason=f"{trade.symbol}: no stored price to check the trade against",
        )
    intent = session.get(TradeIntent, intent_id)
    assert intent is not None
    entry = session.scalar(
        select(Order).where(Order.intent_id == intent_id, Order.leg == OrderLeg.ENTRY)
    )
    return IntentOutcome(
        intent_id=intent.id,
        account=account,
        symbol=intent.symbol,
        side=intent.side,
        qty=intent.qty,
        status=str(intent.status),
        reason=intent.reject_reason,
        order_status=str(entry.status) if entry is not None else None,
    )


def pitch_trade(
    session: Session,
    pitch: Pitch,
    account: AccountConfig,
    *,
    qty: Decimal | None,
    weight: Decimal | None,
    now: datetime,
) -> ManualTrade:
    """The trade a person approves from a pitch: its side and bracket, sized by `qty`, or by
    `weight` of the account's equity (its latest snapshot; starting cash before any) with the
    account's sizing rule. A dropped pitch, or one with no stored price, raises."""
    if pitch.dropped_reason is not None:
        raise ConflictError(f"pitch {pitch.id} was dropped: {pitch.dropped_reason}")
    if qty is None:
        priced = last_close(session, pitch.symbol, now)
        if priced is None:
            raise ConflictError(f"{pitch.symbol}: no stored price to size pitch {pitch.id} at")
        row = account_by_name(session, account.name)
        snapshot = latest_snapshot(session, row.id) if row is not None else None
        equity = snapshot.equity if snapshot is not None else account.starting_cash
        sized = size_order(
            weight=weight if weight is not None else Decimal("0.05"),
            price=priced[0],
            equity=equity,
            account=account,
        )
        if sized.skipped is not None:
            raise ConflictError(f"pitch {pitch.id} cannot be sized: {sized.skipped}")
        qty = sized.qty
    return ManualTrade(
        symbol=pitch.symbol,
        side=pitch.side,
        qty=qty,
        take_profit=_cents(pitch.take_profit),
        stop_loss=_cents(pitch.stop_loss),
        reason=f"pitch {pitch.id} by {pitch.pm}: {pitch.thesis}"[:1000],
    )


def _cents(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(Decimal("0.01"))
