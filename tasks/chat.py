"""The chat assistant's prompt, and reading its answer's text while it streams.

The prompt is a system message (what the assistant may do, and that it only
proposes), the conversation's recent messages, and the user's message with a
context block (services/llm/context.py, `stage: chat`): the account's cash
and equity, positions with unrealised P&L, the watchlist with prices, and the
request itself. The offline assistant answers from the block; a language
model reads it as part of the prompt. Pure: the caller gathers the data.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from services.llm.context import embed_context

HISTORY = 10  # earlier messages the model sees

SYSTEM = (
    "You are the trading assistant of an AITrader account. Answer from the context block only; "
    "do not invent prices or positions. You may propose trades (symbol, side buy or sell, whole "
    "shares, optionally both a take-profit and a stop-loss) and watchlist changes. You never "
    "execute anything: every trade you propose goes through the account's pre-trade risk checks "
    "and may wait for a person's approval. Do not propose a trade the user did not ask for. "
    "Answer in the JSON schema given."
)


def chat_messages(
    history: Sequence[tuple[str, str]], request: str, context: dict[str, Any]
) -> list[dict[str, Any]]:
    """[system, *history (role, content), user + context block]."""
    payload = {"stage": "chat", "request": request, **context}
    return [
        {"role": "system", "content": SYSTEM},
        *({"role": role, "content": content} for role, content in history[-HISTORY:]),
        {"role": "user", "content": f"{request}\n\n{embed_context(payload)}"},
    ]


class MessageText:
    """Feed it a JSON answer as it streams in; it gives back the new text of its top-level
    `"message"` string as soon as that text is known, escapes decoded.

    It looks for the key `"message"` at any depth the stream reaches first; the
    assistant's schema puts it at the top, and a model that answers otherwise
    simply streams nothing (the final answer is validated in full anyway).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._start: int | None = None  # index just past the opening quote of the value
        self._emitted = 0  # characters of the raw value consumed
        self._done = False

    def feed(self, chunk: str) -> str:
        self._buffer += chunk
        if self._done:
            return ""
        if self._start is None:
            key = self._buffer.find('"message"')
            if key < 0:
                return ""
            rest = self._buffer[key + len('"message"') :]
            stripped = rest.lstrip()
            if not stripped.startswith(":"):
                return ""
            after = stripped[1:].lstrip()
            if not after:
                return ""
            if not after.startswith('"'):
                self._done = True
                return ""
            self._start = len(self._buffer) - len(after) + 1
        return self._decode()

    def _decode(self) -> str:
        assert self._start is not None
        raw = self._buffer[self._start :]
        end = self._closing_quote(raw)
        upto = end if end is not None else self._safe_prefix(raw)
        piece = raw[self._emitted : upto]
        self._emitted = upto
        if end is not None:
            self._done = True
        if not piece:
            return ""
        return str(json.loads(f'"{piece}"'))

    @staticmethod
    def _closing_quote(raw: str) -> int | None:
        escaped = False
        for i, char in enumerate(raw):
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                return i
        return None

    def _safe_prefix(self, raw: str) -> int:
        """How much of `raw` can be decoded now: not ending inside an escape sequence."""
        cut = len(raw)
        backslash = raw.rfind("\\", self._emitted)
        while backslash >= 0:
            run = len(raw[: backslash + 1]) - len(raw[: backslash + 1].rstrip("\\"))
            if run % 2 == 0:  # an escaped backslash: complete
                break
            needed = 6 if raw[backslash + 1 : backslash + 2] == "u" else 2
            if backslash + needed > len(raw):
                cut = backslash
            break
        return max(cut, self._emitted)
