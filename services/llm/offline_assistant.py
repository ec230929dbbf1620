"""The offline chat assistant: `offline/assistant`, answering a `ChatAnswer` from the prompt.

Deterministic and free, like the offline analyst. It reads the chat's context
block (the account, positions with P&L, the watchlist with prices, and the
user's request) and understands a few plain requests:

* "buy 10 AAPL", "sell 5 msft with stop 90 and take profit 120"
* "watch NVDA" / "add NVDA to my watchlist", "unwatch NVDA" / "remove NVDA"
* anything else: a summary of the portfolio and the watchlist.

It proposes; it never decides. Every trade it names goes through the same
pre-trade checks as the council's, and waits for a trader unless chat trades
are set to execute. It does not size, does not guess prices, and says what it
did not understand.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from models.llm_outputs import ChatAnswer, ChatTrade, WatchlistChange
from services.llm.context import extract_context
from services.llm.offline_context import OfflineContextError

_TRADE = re.compile(
    r"\b(?P<side>buy|sell)\s+(?P<qty>\d+)\s+(?:shares?\s+(?:of\s+)?)?(?P<symbol>[a-z][a-z0-9.\-]*)",
    re.IGNORECASE,
)
_STOP = re.compile(r"\bstop(?:[\s-]*loss)?\s*(?:at\s*)?\$?(?P<price>\d+(?:\.\d+)?)", re.IGNORECASE)
_TARGET = re.compile(
    r"\b(?:take[\s-]*profit|target)\s*(?:at\s*)?\$?(?P<price>\d+(?:\.\d+)?)", re.IGNORECASE
)
_WATCH = re.compile(
    r"\b(?:(?P<un>unwatch|remove)|watch|add)\s+(?P<symbol>[a-z][a-z0-9.\-]*)"
    r"(?:\s+(?:to|from)\s+(?:my\s+)?watch\s*list)?",
    re.IGNORECASE,
)
_CLAUSES = re.compile(r"(?:;|,|\band\b|\bthen\b)", re.IGNORECASE)


def answer_chat_prompt(messages: list[Any]) -> str:
    """The assistant's `ChatAnswer` JSON for the chat prompt `messages`. Pure."""
    context = _context(messages)
    request = str(context.get("request", ""))
    trades, changes, unread = _read_request(request)
    lines: list[str] = []
    for t in trades:
        bracket = (
            f" with take-profit {t.take_profit} and stop-loss {t.stop_loss}"
            if t.take_profit is not None
            else ""
        )
        lines.append(f"Proposed: {t.side} {t.qty} {t.symbol}{bracket}.")
    for c in changes:
        lines.append(
            f"{'Adding' if c.action == 'add' else 'Removing'} {c.symbol} "
            f"{'to' if c.action == 'add' else 'from'} your watchlist."
        )
    if trades:
        lines.append(
            "Every trade goes through the account's pre-trade checks; unless chat trades are "
            "set to execute, it waits in the pending trades for a trader's approval."
        )
    if unread:
        lines.append(f"I did not understand: {'; '.join(unread)}.")
    if not trades and not changes:
        lines.append(_summary(context))
    answer = ChatAnswer(message=" ".join(lines), trades=trades, watchlist_changes=changes)
    return answer.model_dump_json()


def _context(messages: list[Any]) -> dict[str, Any]:
    for message in reversed(messages):
        if message.get("role") == "user":
            payload = extract_context(str(message.get("content", "")))
            if payload is not None and payload.get("stage") == "chat":
                return payload
    raise OfflineContextError("the chat prompt has no chat context block")


def _read_request(request: str) -> tuple[list[ChatTrade], list[WatchlistChange], list[str]]:
    trades: list[ChatTrade] = []
    changes: list[WatchlistChange] = []
    unread: list[str] = []
    for trade in _TRADE.finditer(request):
        tail = request[trade.end() : trade.end() + 80]
        tail = _TRADE.split(tail, maxsplit=1)[0]
        stop, target = _price(_STOP, tail), _price(_TARGET, tail)
        try:
            trades.append(
                ChatTrade(
                    symbol=trade["symbol"],
                    side=trade["side"].lower(),
                    qty=int(trade["qty"]),
                    take_profit=target if stop is not None else None,
                    stop_loss=stop if target is not None else None,
                    reason=f"asked in chat: {trade.group(0)}",
                )
            )
        except ValidationError as exc:
            unread.append(f"{trade.group(0)} ({exc.errors()[0]['msg']})")
    rest = _TRADE.sub(" ", request)
    for clause in _CLAUSES.split(rest):
        for watch in _WATCH.finditer(clause):
            try:
                changes.append(
                    WatchlistChange(
                        action="remove" if watch["un"] else "add", symbol=watch["symbol"]
                    )
                )
            except ValidationError as exc:
                unread.append(f"{watch.group(0)} ({exc.errors()[0]['msg']})")
    return trades, changes, unread


def _price(pattern: re.Pattern[str], text: str) -> Decimal | None:
    found = pattern.search(text)
    if found is None:
        return None
    try:
        return Decimal(found["price"])
    except InvalidOperation:
        return None


def _summary(context: dict[str, Any]) -> str:
    account = context.get("account") or {}
    parts = [
        f"Account {account.get('name', '?')}: cash {account.get('cash', '?')}, "
        f"equity {account.get('equity', '?')}."
    ]
    positions = context.get("positions") or []
    if positions:
        held = ", ".join(
            f"{p['symbol']} {p['qty']} @ {p['avg_price']} (unrealised {p.get('unrealized_pnl')})"
            for p in positions
        )
        parts.append(f"Positions: {held}.")
    else:
        parts.append("No open positions.")
    watched = context.get("watchlist") or []
    if watched:
        listed = ", ".join(f"{w['symbol']} {w.get('price') or 'no price'}" for w in watched)
        parts.append(f"Watchlist: {listed}.")
    parts.append('Ask me to "buy 10 AAPL", "watch NVDA" or "unwatch NVDA".')
    return " ".join(parts)
