"""One chat turn: the user's message, the model's structured answer, and what was done.

1. The user's message is stored (its id keys everything the turn does).
2. The assistant sees the account (cash, equity, positions with unrealised
   P&L at live prices), the user's watchlist with prices, and the recent
   conversation; it answers a `ChatAnswer` through the LLM gateway (recorded
   in `llm_calls`, within `CHAT_BUDGET_USD`, repaired once if malformed).
3. An answer that stays invalid does nothing: the reply says so.
4. Watchlist changes are applied; trades become intents through the same
   pre-trade checks and exactly-once submit as the council's, executed only
   with `CHAT_EXECUTE`, otherwise left for a trader's approval
   (tasks/execution/manual.py). The model proposes; it never executes.
5. The reply is stored with all of it in its `payload`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from api.auth import Principal
from api.runtime import Runtime
from api.valuation import current_marks, portfolio
from db.engine import unit_of_work
from db.queries import conversations as q
from db.queries.audit import record_event
from db.queries.llm_calls import SqlCallStore
from db.queries.tokens import ensure_user
from db.queries.watchlist import add_to_watchlist, remove_from_watchlist, watchlist
from models.enums import ChatRole
from models.errors import AITraderError, BudgetExceededError
from models.intents import IntentOutcome, ManualTrade
from models.llm_outputs import ChatAnswer
from models.users import ChatMessage
from services.llm.budget import RunBudget
from services.llm.gateway import CallContext, LLMGateway, ProviderLimits
from services.llm.offline import register_offline_provider
from services.llm.streaming import TextSink
from tasks.chat import HISTORY, chat_messages
from tasks.execution.manual import place_manual_trades, trading_account


async def chat_turn(
    runtime: Runtime,
    caller: Principal,
    conversation_id: int,
    content: str,
    on_text: TextSink | None = None,
) -> ChatMessage:
    """Answer one message of the caller's conversation; the stored reply."""
    user_message_id, history, context = await asyncio.to_thread(
        _begin, runtime, caller, conversation_id, content
    )
    messages = chat_messages(history, content, context)
    settings = runtime.settings
    register_offline_provider()
    gateway = LLMGateway(
        SqlCallStore(runtime.sessions),
        budget=RunBudget(Decimal(str(settings.chat_budget_usd))),
        limits=ProviderLimits(settings.llm_concurrency),
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
    )
    ctx = CallContext("chat", f"conversation-{conversation_id}")
    try:
        result = await gateway.complete(
            messages, ChatAnswer, model=settings.chat_model, ctx=ctx, on_text=on_text
        )
    except BudgetExceededError as exc:
        reply = f"Nothing was done: this message would exceed its LLM budget ({exc})."
        return await asyncio.to_thread(
            _finish,
            runtime,
            caller,
            conversation_id,
            reply,
            None,
            {"status": "budget", "error": str(exc)},
        )
    call = {"id": result.call_id, "status": str(result.status), "cost_usd": str(result.cost_usd)}
    if result.value is None:
        reply = (
            "I could not understand the model's answer, so nothing was done "
            f"({result.status}: {result.error})."
        )
        payload: dict[str, Any] = {
            "status": str(result.status),
            "error": result.error,
            "call": call,
        }
        return await asyncio.to_thread(
            _finish, runtime, caller, conversation_id, reply, result.call_id, payload
        )
    answer = result.value
    changes = await asyncio.to_thread(_apply_watchlist, runtime, caller, answer)
    trades = await _place_trades(runtime, caller, answer, user_message_id)
    payload = {
        "status": str(result.status),
        "answer": answer.model_dump(mode="json"),
        "trades": [t.model_dump(mode="json") for t in trades],
        "watchlist_changes": changes,
        "executed": runtime.settings.chat_execute,
        "call": call,
    }
    return await asyncio.to_thread(
        _finish, runtime, caller, conversation_id, answer.message, result.call_id, payload
    )


def _begin(
    runtime: Runtime, caller: Principal, conversation_id: int, content: str
) -> tuple[int, list[tuple[str, str]], dict[str, Any]]:
    with unit_of_work(runtime.sessions) as session:
        user = ensure_user(session, caller.actor)
        conversation = q.owned_conversation(session, conversation_id, user.id)
        earlier = q.messages_of(session, conversation.id, last=HISTORY)
        history = [(str(m.role), m.content) for m in earlier if m.role is not ChatRole.SYSTEM]
        message = q.add_message(session, conversation, ChatRole.USER, content)
        account = trading_account(runtime.settings)
        book = portfolio(session, runtime.cache, account.name)
        items = watchlist(session, user.id)
        marks = current_marks(session, runtime.cache, {i.symbol for i in items})
        context = {
            "account": {
                "name": account.name,
                "cash": str(book.cash),
                "equity": str(book.total_value),
                "positions_value": str(book.positions_value),
            },
            "positions": [
                p.model_dump(mode="json", exclude={"updated_at"}) for p in book.positions
            ],
            "watchlist": [
                {
                    "symbol": i.symbol,
                    "price": str(marks[i.symbol].price) if i.symbol in marks else None,
                    "note": i.note,
                }
                for i in items
            ],
            "execution": "executes at once" if runtime.settings.chat_execute else "waits",
        }
        return message.id, history, context


def _apply_watchlist(
    runtime: Runtime, caller: Principal, answer: ChatAnswer
) -> list[dict[str, Any]]:
    """Each change in its own transaction: one refused (unknown symbol) does not undo another."""
    done: list[dict[str, Any]] = []
    for change in answer.watchlist_changes:
        outcome = {"action": change.action, "symbol": change.symbol, "status": "done"}
        try:
            with unit_of_work(runtime.sessions) as session:
                user = ensure_user(session, caller.actor)
                if change.action == "add":
                    add_to_watchlist(session, user.id, change.symbol, change.note)
                else:
                    remove_from_watchlist(session, user.id, change.symbol)
                record_event(
                    session,
                    **caller.audit(),
                    event=f"watchlist.{'added' if change.action == 'add' else 'removed'}",
                    entity_type="watchlist",
                    entity_id=change.symbol,
                    via="chat",
                )
        except AITraderError as exc:  # refused: recorded in the reply, the rest goes on
            outcome = {**outcome, "status": "refused", "reason": str(exc)}
        done.append(outcome)
    return done


async def _place_trades(
    runtime: Runtime, caller: Principal, answer: ChatAnswer, user_message_id: int
) -> list[IntentOutcome]:
    if not answer.trades:
        return []
    trades = [
        ManualTrade(
            symbol=t.symbol,
            side=t.side,
            qty=Decimal(t.qty),
            take_profit=t.take_profit.quantize(Decimal("0.01")) if t.take_profit else None,
            stop_loss=t.stop_loss.quantize(Decimal("0.01")) if t.stop_loss else None,
            reason=t.reason,
        )
        for t in answer.trades
    ]
    outcomes = await place_manual_trades(
        runtime.sessions,
        runtime.settings,
        trades,
        source=f"chat-{user_message_id}",
        execute=runtime.settings.chat_execute,
    )
    await asyncio.to_thread(_audit_trades, runtime, caller, user_message_id, outcomes)
    return outcomes


def _audit_trades(
    runtime: Runtime, caller: Principal, message_id: int, outcomes: list[IntentOutcome]
) -> None:
    with unit_of_work(runtime.sessions) as session:
        for outcome in outcomes:
            record_event(
                session,
                **caller.audit(),
                event="trade.requested",
                entity_type="trade_intent",
                entity_id=outcome.intent_id or "-",
                after=outcome.model_dump(mode="json"),
                via=f"chat message {message_id}",
            )


def _finish(
    runtime: Runtime,
    caller: Principal,
    conversation_id: int,
    reply: str,
    call_id: int | None,
    payload: dict[str, Any],
) -> ChatMessage:
    """Store the reply (the conversation's owner was checked when the turn began)."""
    with unit_of_work(runtime.sessions) as session:
        conversation = q.conversation(session, conversation_id)
        message = q.add_message(
            session,
            conversation,
            ChatRole.ASSISTANT,
            reply,
            llm_call_id=call_id,
            payload=payload,
        )
        record_event(
            session,
            **caller.audit(),
            event="chat.answered",
            entity_type="conversation",
            entity_id=conversation_id,
            after={
                "message_id": message.id,
                "status": payload.get("status"),
                "llm_call_id": call_id,
                "trades": len(payload.get("trades", [])),
                "watchlist_changes": len(payload.get("watchlist_changes", [])),
            },
        )
        return message
