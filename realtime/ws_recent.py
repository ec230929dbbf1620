"""What the WebSocket hub remembers of a keyed topic, so each key reaches a client once.

A keyed topic is one whose messages have an identity (`trading_signals`: the
signal's, `models.bus.signal_key`). `RecentMessages` keeps the last few
thousand of one topic as sent, numbered in publish order: the hub looks a
key up there to skip a repeat, and a subscriber catching up (`WSHub.replay`)
reads what was published while its `Backlog` was being read from storage.
Neither the hub's clients nor storage are known here.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple


class KeyedMessage(NamedTuple):
    """A message a catching-up subscriber is sent before live ones (e.g. a stored signal)."""

    key: Hashable
    data: Any
    symbol: str | None
    ts: datetime


@dataclass(frozen=True, slots=True)
class Backlog:
    """What `WSHub.replay` sends before going live, as its caller read it from storage."""

    messages: Sequence[KeyedMessage]  # oldest first
    since: datetime  # the hub adds what it published at or after this that `messages` lacks
    truncated: bool  # more were stored at or after the asked-for instant than were read


@dataclass(frozen=True, slots=True)
class Published:
    """One keyed message as the hub sent it (`text` is the wire form)."""

    seq: int  # 1, 2, ... per topic, in publish order
    key: Hashable
    symbol: str | None
    ts: datetime
    text: str


class RecentMessages:
    """The last `size` keyed messages of one topic, numbered, with their keys for lookup.

    Keys are unique here: the hub never adds a key it already holds.
    """

    def __init__(self, size: int) -> None:
        self._entries: deque[Published] = deque(maxlen=size)
        self._keys: set[Hashable] = set()
        self.seq = 0  # of the newest entry; 0 while empty

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def add(self, key: Hashable, symbol: str | None, ts: datetime, text: str) -> None:
        if len(self._entries) == self._entries.maxlen:
            self._keys.discard(self._entries[0].key)
        self.seq += 1
        self._entries.append(Published(self.seq, key, symbol, ts, text))
        self._keys.add(key)

    def after(self, seq: int) -> list[Published]:
        """The entries still held that are newer than `seq`, oldest first."""
        if not self._entries:
            return []
        skip = max(0, seq - self._entries[0].seq + 1)
        return list(itertools.islice(self._entries, skip, None))

    def lost_after(self, seq: int) -> int:
        """How many entries newer than `seq` were pushed out already (0 if none)."""
        if not self._entries:
            return 0
        return max(0, self._entries[0].seq - seq - 1)
