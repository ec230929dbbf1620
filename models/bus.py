"""Messages on the event bus, shared by the realtime process and the flows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.base import utcnow

# Stream names. One stream per purpose; per-symbol signal streams for filtered consumers.
SIGNALS_GLOBAL = "signals:global"
ORDERS_GATEWAY = "orders:gateway"
FILLS_GLOBAL = "fills:global"
AUDIT_RAW_TICKS = "audit:raw_ticks"
JOBS_UPDATES = "jobs:updates"
SUGGESTIONS_GLOBAL = "suggestions:global"
# The market-data tier (REALTIME_ROLE=ingest) to its api replicas: realtime/market_stream.py.
MARKET_PRICES = "market:prices"
MARKET_BOOKS = "market:books"
MARKET_SNAPSHOT = "market:snapshot"

# A signal's identity: strategy name, symbol, kind, event time. Within one timeframe (the
# engine's signals are all `tick`) this is the signals table's unique key, so a signal
# that reaches a consumer twice (a publication retried after an outage, a row replayed
# from the table) is recognisably the same one.
SignalKey = tuple[str, str, str, datetime]


def signals_for(symbol: str) -> str:
    return f"signals:{symbol.upper()}"


def signal_key(data: Mapping[str, Any]) -> SignalKey | None:
    """The identity of a signal message's `data`; None if `data` does not carry one.

    The time is compared as an instant, so `...+00:00` and `...Z` spell the same signal.
    """
    strategy, symbol, kind, ts = (data.get(f) for f in ("strategy", "symbol", "kind", "ts"))
    if not (
        isinstance(strategy, str)
        and isinstance(symbol, str)
        and isinstance(kind, str)
        and isinstance(ts, str)
    ):
        return None
    try:
        instant = datetime.fromisoformat(ts)
    except ValueError:
        return None
    if instant.utcoffset() is None:
        return None
    return (strategy, symbol, kind, instant)


class BusMessage(BaseModel):
    """`{type, ts, data}`: the one envelope on every stream and every WebSocket topic."""

    model_config = ConfigDict(frozen=True)

    type: str
    ts: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)
