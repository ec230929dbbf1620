"""One chat turn: the user's message, the model's structured answer, and what was done.

1. The assistant sees the account (cash, equity, positions with unrealised
   P&L at live prices), the user's watchlist with prices, and the recent
   conversation (read only: nothing is written yet); it answers a `ChatAnswer`
   through the LLM gateway (recorded in `llm_calls`, within `CHAT_BUDGET_USD`,
   repaired once if malformed).
2. One unit of work then stores the user's message, the reply and the
   watchlist changes (each in a savepoint: one refused does not undo
   another), with their audit events. If it fails, nothing was done and the
   request may say so (503, retry).
3. Only then do trades happen: they become intents keyed by the stored user
   message (`chat-<id>-<n>`), through the same pre-trade checks and
   exactly-once submit as the council's, executed only with `CHAT_EXECUTE`,
   otherwise left for a trader's approval (tasks/execution/manual.py). The
   model proposes; it never executes.
4. The reply's payload is brought up to date with the trades' outcomes. Past
   step 3 the request answers success whatever happens: if even that update
   cannot be written, the outcomes are still in the answer, and reading the
   conversation shows them from the intents (keyed by the message), so what
   the turn did is never lost or hidden behind an error.

An answer that stays invalid does nothing: the reply says so.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from api.after_effect import off_the_loop, record_after_effect
from api.auth import Principal
from api.valuation import current_marks, portfolio
from db.engine import transaction
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
from realtime.runtime import Runtime
from services.llm.budget import RunBudget
from tasks.chat import HISTORY, chat_messages
from tasks.execution.manual import outcomes_of_source, place_manual_trades, trading_account

if TYPE_CHECKING:
    from services.llm.streaming import TextSink


def _load_llm_modules() -> None:
    import services.llm.catalog
    import services.llm.gateway
    import services.llm.limits
    import services.llm.offline  # noqa: F401  (all four: loaded here, used by chat_turn)


async def chat_turn(
    runtime: Runtime,
    caller: Principal,
    conversation_id: int,
    content: str,
    on_text: TextSink | None = None,
) -> ChatMessage:
    """Answer one message of the caller's conversation; the stored reply."""
    history, context = await asyncio.to_thread(_context, runtime, caller, conversation_id)
    messages = chat_messages(history, content, context)
    settings = runtime.settings
    # litellm loads with the first chat turn, not with the server: it is 2-3 s and ~100 MB
    # that a realtime process nobody chats with never needs. In a thread: imported on the
    # event loop, it froze every price stream of the process for those seconds (bench/soak).
    await asyncio.to_thread(_load_llm_modules)
    from services.llm.catalog import catalog_from_settings
    from services.llm.gateway import CallContext, LLMGateway
    from services.llm.limits import ProviderLimits
    from services.llm.offline import register_offline_provider

    register_offline_provider()
    gateway = LLMGateway(
        SqlCallStore(runtime.sessions),
        budget=RunBudget(Decimal(str(settings.chat_budget_usd))),
        limits=ProviderLimits(settings.llm_concurrency),
        catalog=catalog_from_settings(settings)[0],
    )
    ctx = CallContext("chat", f"conversation-{conversation_id}")
    turn = _Turn(runtime, caller, conversation_id, content)
    try:
        result = await gateway.complete(
            messages, ChatAnswer, model=settings.chat_model, ctx=ctx, on_text=on_text
        )
    except BudgetExceededError as exc:
        reply = f"Nothing was done: this message would exceed its LLM budget ({exc})."
        return await turn.record(reply, None, {"status": "budget", "error": str(exc)})
    call = {"id": result.call_id, "status": str(result.status), "cost_usd": str(result.cost_usd)}
    if result.value is None:
        reply = (
            "I could not understand the model's answer, so nothing was done "
            f"({result.status}: {result.error})."
        )
        payload: dict[str, Any] = {"status": str(result.status), "error": result.error}
        return await turn.record(reply, result.call_id, {**payload, "call": call})
    answer = result.value
    payload = {
        "status": str(result.status),
        "answer": answer.model_dump(mode="json"),
        "trades": [],
        "executed": runtime.settings.chat_execute,
        "call": call,
    }
    reply_row = await turn.record(answer.message, result.call_id, payload, answer)
    if not answer.trades:
        return reply_row
    trades = await _place_trades(runtime, answer, turn.user_message_id)
    return await turn.record_trades(reply_row, trades)


class _Turn:
    """The writes of one turn, in the order the module's docstring gives."""

    def __init__(
        self, runtime: Runtime, caller: Principal, conversation_id: int, content: str
    ) -> None:
        self.runtime = runtime
        self.caller = caller
        self.conversation_id = conversation_id
        self.content = content
        self.user_message_id = 0

    async def record(
        self,
        reply: str,
        call_id: int | None,
        payload: dict[str, Any],
        answer: ChatAnswer | None = None,
    ) -> ChatMessage:
        """Store the user's message, the reply and the watchlist changes: all or nothing."""

        def write(session: Session) -> ChatMessage:
            user = ensure_user(session, self.caller.actor)
            conversation = q.owned_conversation(session, self.conversation_id, user.id)
            asked = q.add_message(session, conversation, ChatRole.USER, self.content)
            changes = _apply_watchlist(session, self.caller, user.id, answer) if answer else None
            body = {**payload, "watchlist_changes": changes} if changes is not None else payload
            message = q.add_message(
                session,
                conversation,
                ChatRole.ASSISTANT,
                reply,
                llm_call_id=call_id,
                payload=body,
            )
            record_event(
                session,
                **self.caller.audit(),
                event="chat.answered",
                entity_type="conversation",
                entity_id=self.conversation_id,
                after={
                    "message_id": message.id,
                    "status": payload.get("status"),
                    "llm_call_id": call_id,
                    "trades": len(answer.trades) if answer else 0,
                    "watchlist_changes": len(changes or []),
                },
            )
            message.payload = {**body, "user_message_id": asked.id}
            self.user_message_id = asked.id
            return message

        return await asyncio.to_thread(transaction, self.runtime.sessions, write)

    async def record_trades(self, reply: ChatMessage, trades: list[IntentOutcome]) -> ChatMessage:
        """Bring the stored reply up to date with what its trades did. Never raises: the
        trades have happened, so the request must answer them, stored or not."""
        outcomes = [t.model_dump(mode="json") for t in trades]
        reply.payload = {**(reply.payload or {}), "trades": outcomes}

        def write(session: Session) -> None:
            row = session.get(ChatMessage, reply.id)
            if row is not None:
                row.payload = reply.payload
            for outcome in trades:
                record_event(
                    session,
                    **self.caller.audit(),
                    event="trade.requested",
                    entity_type="trade_intent",
                    entity_id=outcome.intent_id or "-",
                    after=outcome.model_dump(mode="json"),
                    via=f"chat message {self.user_message_id}",
                )

        await record_after_effect(  # if it fails, reads show the trades from their intents
            self.runtime.sessions,
            write,
            what="chat.trades",
            message_id=reply.id,
            intents=[t.intent_id for t in trades],
        )
        return reply


def reported_payload(session: Session, message: ChatMessage) -> dict[str, Any] | None:
    """A reply's payload as a reader should see it: if the turn's trades happened but their
    outcomes could not be written back, they are read from the intents the turn made."""
    payload = message.payload
    if not payload or payload.get("trades") or not (payload.get("answer") or {}).get("trades"):
        return payload
    asked = payload.get("user_message_id")
    if not isinstance(asked, int):
        return payload
    found = outcomes_of_source(session, f"chat-{asked}")
    return {**payload, "trades": [o.model_dump(mode="json") for o in found]}


def _context(
    runtime: Runtime, caller: Principal, conversation_id: int
) -> tuple[list[tuple[str, str]], dict[str, Any]]:
    """What the assistant is shown; read only (the caller's user row exists: its token's)."""
    with runtime.read_sessions() as session:
        user_id = q.user_id_of(session, caller.actor)
        conversation = q.owned_conversation(session, conversation_id, user_id)
        earlier = q.messages_of(session, conversation.id, last=HISTORY)
        history = [(str(m.role), m.content) for m in earlier if m.role is not ChatRole.SYSTEM]
        account = trading_account(runtime.settings)
        book = portfolio(session, runtime.cache, account.name)
        items = watchlist(session, user_id) if user_id is not None else []
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
        return history, context


def _apply_watchlist(
    session: Session, caller: Principal, user_id: int, answer: ChatAnswer
) -> list[dict[str, Any]]:
    """Each change in its own savepoint: one refused (unknown symbol) does not undo another."""
    done: list[dict[str, Any]] = []
    for change in answer.watchlist_changes:
        outcome = {"action": change.action, "symbol": change.symbol, "status": "done"}
        try:
            with session.begin_nested():
                if change.action == "add":
                    add_to_watchlist(session, user_id, change.symbol, change.note)
                else:
                    remove_from_watchlist(session, user_id, change.symbol)
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
    runtime: Runtime, answer: ChatAnswer, user_message_id: int
) -> list[IntentOutcome]:
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
    return await off_the_loop(
        lambda: place_manual_trades(
            runtime.sessions,
            runtime.settings,
            trades,
            source=f"chat-{user_message_id}",
            execute=runtime.settings.chat_execute,
        )
    )
