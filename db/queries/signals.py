"""Signal rows: written in batches by the realtime process, listed for the dashboard,
replayed to a WebSocket subscriber that catches up (`signals_since`).

Writes are idempotent: a signal is unique per (strategy, symbol, timeframe,
kind, ts), and a batch that repeats one (a replay, a retried flush) inserts
nothing for it. Symbols the instruments table has never seen are created bare
first, because a live feed can carry a symbol nobody imported.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.queries.inserts import insert_new
from db.queries.instruments import ensure_instruments
from models.enums import Side, Timeframe
from models.strategy import Signal, Strategy

MAX_LIST = 1000


def ensure_strategy(
    session: Session, name: str, kind: str, default_params: dict[str, Any], description: str
) -> Strategy:
    """The strategy row called `name`, created with `default_params` if it does not exist."""
    strategy = session.scalar(select(Strategy).where(Strategy.name == name))
    if strategy is None:
        strategy = Strategy(name=name, kind=kind, params=default_params, description=description)
        session.add(strategy)
        session.flush()
    return strategy


def insert_signals(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert signal rows (column -> value dicts); return how many were new."""
    if not rows:
        return 0
    ensure_instruments(session, {row["symbol"] for row in rows})
    return insert_new(session, Signal, rows)


def signal_row(
    strategy_id: int,
    symbol: str,
    kind: str,
    side: Side,
    score: float,
    ts: datetime,
    payload: dict[str, Any],
    timeframe: Timeframe = Timeframe.TICK,
) -> dict[str, Any]:
    """One row for `insert_signals`. The score is clamped to what the column holds (NaN: 0)."""
    finite = score if math.isfinite(score) else 0.0
    strength = Decimal(str(round(max(-999_999.0, min(999_999.0, finite)), 6)))
    return {
        "strategy_id": strategy_id,
        "symbol": symbol,
        "timeframe": timeframe,
        "kind": kind,
        "ts": ts,
        "side": side,
        "strength": strength,
        "payload": payload,
    }


def recent_signals(
    session: Session,
    *,
    symbol: str | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Signal]:
    """Newest first: the signals matching every filter given, at most `limit` of them."""
    stmt = select(Signal)
    if symbol is not None:
        stmt = stmt.where(Signal.symbol == symbol)
    if kind is not None:
        stmt = stmt.where(Signal.kind == kind)
    if since is not None:
        stmt = stmt.where(Signal.ts >= since)
    stmt = stmt.order_by(Signal.ts.desc(), Signal.id.desc()).limit(min(limit, MAX_LIST))
    return list(session.scalars(stmt))


def signals_since(
    session: Session,
    since: datetime,
    *,
    symbols: Collection[str] | None = None,
    limit: int = MAX_LIST,
) -> list[tuple[Signal, str]]:
    """The newest `limit` signals at or after `since`, oldest first, each with its strategy's
    name: what a `trading_signals` subscriber asking for `since` is replayed.

    Same filter as `recent_signals` (`ts >= since`, so GET /api/signals?since= lists the same
    rows), newest kept when there are more: the replay must join the live feed without a gap,
    so it is the oldest ones that a bounded replay leaves out. Ties in `ts` keep insertion
    order, which is the engine's. Ask for one more than you send to learn whether any were
    left out.
    """
    stmt = (
        select(Signal, Strategy.name)
        .join(Strategy, Strategy.id == Signal.strategy_id)
        .where(Signal.ts >= since)
    )
    if symbols:
        stmt = stmt.where(Signal.symbol.in_(sorted(symbols)))
    stmt = stmt.order_by(Signal.ts.desc(), Signal.id.desc()).limit(limit)
    rows = [(signal, name) for signal, name in session.execute(stmt).tuples()]
    rows.reverse()
    return rows
