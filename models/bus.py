"""Messages on the event bus, shared by the realtime process and the flows."""

from __future__ import annotations

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


def signals_for(symbol: str) -> str:
    return f"signals:{symbol.upper()}"


class BusMessage(BaseModel):
    """`{type, ts, data}`: the one envelope on every stream and every WebSocket topic."""

    model_config = ConfigDict(frozen=True)

    type: str
    ts: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)
