"""The latest price of every symbol, shared by the sources, the hubs and the API.

Thread-safe: sources may call `update` from any thread. A global `version`
moves on every update and every entry remembers the version that last touched
it, so a reader can ask "what changed since version v" and fan-out can
coalesce: a slow reader skips intermediate states and gets the latest one.
The lock guards only copying plain tuples; building schemas and serialising
happen outside it, so a reader never holds up a writer.

Replicas (REALTIME_ROLE=api) do not see ticks: they are sent the ingest
process's entries as they are (`rows_since` there, `apply_rows` here), versions
included, so every replica answers the same prices at the same version.

Not here: persistence (bars are rolled up elsewhere) and fan-out (the hubs).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from models.market_data import PriceSnapshot, Tick


@dataclass(slots=True)
class _Entry:
    price: float
    prev_price: float | None
    day_open: float
    day: date
    ts: datetime
    version: int


Row = tuple[str, float, float | None, float, datetime, int]
"""symbol, price, previous price, day open, tick time, version: one entry as it is."""


class PriceCache:
    """Latest price, previous price and day open per symbol, with a change version."""

    def __init__(self, start_version: int = 0) -> None:
        """`start_version`: where versions start; the ingest tier starts from the clock so a
        restarted one keeps counting up past what its replicas hold (see realtime/runtime.py)."""
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._version = start_version

    @property
    def version(self) -> int:
        """Moves on every update; equal versions mean nothing changed."""
        return self._version

    def __len__(self) -> int:
        return len(self._entries)

    def update(self, tick: Tick) -> int:
        """Record a tick and return the new version. A tick older than the entry is ignored."""
        day = tick.ts.date()
        with self._lock:
            entry = self._entries.get(tick.symbol)
            if entry is not None and tick.ts < entry.ts:
                return self._version  # out of order: keep the newer state
            self._version += 1
            if entry is None:
                self._entries[tick.symbol] = _Entry(
                    tick.price, None, tick.price, day, tick.ts, self._version
                )
            else:
                if day != entry.day:
                    entry.day_open, entry.day = tick.price, day
                entry.prev_price, entry.price = entry.price, tick.price
                entry.ts, entry.version = tick.ts, self._version
            return self._version

    def snapshot(self, symbols: Iterable[str] | None = None) -> tuple[int, list[PriceSnapshot]]:
        """Everything (or `symbols`), with the version it is consistent with."""
        return self.changed_since(0, symbols)

    def changed_since(
        self, version: int, symbols: Iterable[str] | None = None
    ) -> tuple[int, list[PriceSnapshot]]:
        """Entries updated after `version`, and the version this answer is current to."""
        current, rows = self.rows_since(version, symbols)
        return current, [_snapshot(row) for row in sorted(rows)]

    def rows_since(
        self, version: int, symbols: Iterable[str] | None = None
    ) -> tuple[int, list[Row]]:
        """As `changed_since`, the entries as plain rows (in no order): what replicas are sent."""
        wanted = None if symbols is None else set(symbols)
        with self._lock:
            return self._version, [
                (s, e.price, e.prev_price, e.day_open, e.ts, e.version)
                for s, e in self._entries.items()
                if e.version > version and (wanted is None or s in wanted)
            ]

    def apply_rows(self, rows: Iterable[Row]) -> int:
        """Take another cache's entries as they are, versions included; return how many changed.

        A row no newer than the entry already held is skipped, so a replica may be sent
        the same state twice (a snapshot and the updates it overlaps) in any order.
        """
        applied = 0
        with self._lock:
            for symbol, price, prev, day_open, ts, version in rows:
                entry = self._entries.get(symbol)
                if entry is not None and version <= entry.version:
                    continue
                self._entries[symbol] = _Entry(price, prev, day_open, ts.date(), ts, version)
                self._version = max(self._version, version)
                applied += 1
        return applied

    def get(self, symbol: str) -> PriceSnapshot | None:
        with self._lock:
            e = self._entries.get(symbol)
            row = (
                None if e is None else (symbol, e.price, e.prev_price, e.day_open, e.ts, e.version)
            )
        return None if row is None else _snapshot(row)

    def symbols(self) -> list[str]:
        with self._lock:
            return sorted(self._entries)


def _snapshot(row: Row) -> PriceSnapshot:
    symbol, price, prev, day_open, ts, version = row
    change = price - day_open
    direction = 0 if prev is None or price == prev else (1 if price > prev else -1)
    return PriceSnapshot(
        symbol=symbol,
        price=price,
        prev_price=prev,
        day_open=day_open,
        change=round(change, 6),
        change_pct=round(change / day_open * 100, 4) if day_open else 0.0,
        direction=direction,
        ts=ts,
        version=version,
    )
