"""How the council commands show runs: decision tables, costs, and what a replay changed.

The queries are imported inside the functions: `aitrader council --help` must answer in 0.5 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple

from rich.table import Table

from cli.context import console

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models.council import CouncilRun

COLUMNS = ("id", "symbol", "action", "weight", "entry", "take-profit", "stop-loss", "status")


class DecisionLine(NamedTuple):
    decision: int
    symbol: str
    action: str
    weight: Decimal
    entry: Decimal | None
    take_profit: Decimal | None
    stop_loss: Decimal | None
    status: str
    approver: str | None
    note: str | None


def decision_lines(session: Session, run_id: int) -> list[DecisionLine]:
    from db.queries import council as q

    pitches = {p.id: p for p in q.pitch_rows(session, run_id)}
    lines = []
    for d in q.decision_rows(session, run_id):
        p = pitches.get(d.pitch_id) if d.pitch_id else None
        entry, tp, sl = (p.entry_price, p.take_profit, p.stop_loss) if p else (None, None, None)
        status, weight = str(d.status), d.target_weight
        lines.append(
            DecisionLine(
                d.id, d.symbol, str(d.action), weight, entry, tp, sl, status, d.approved_by, d.note
            )
        )
    return lines


def print_decisions(session: Session, run_id: int, title: str) -> list[DecisionLine]:
    lines = decision_lines(session, run_id)
    if not lines:
        console.print(f"{title}: none (no pitch survived validation and review)")
        return lines
    table = Table(*COLUMNS, title=title, show_edge=False)
    for x in lines:
        levels = (price(x.entry), price(x.take_profit), price(x.stop_loss))
        table.add_row(str(x.decision), x.symbol, x.action, pct(x.weight), *levels, x.status)
    console.print(table)
    return lines


def print_cost(session: Session, run: CouncilRun) -> None:
    from db.queries import council as q

    calls, cached = q.call_counts(session, run.id)
    console.print(f"LLM cost ${run.cost_usd:.6f}: {calls} calls, {cached} answered from the cache")


def replay_key(x: DecisionLine | None) -> tuple[object, ...] | None:
    """What a replay must reproduce: not ids, not the approval."""
    return None if x is None else (x.action, x.weight, x.entry, x.take_profit, x.stop_loss)


def describe(x: DecisionLine | None) -> str:
    if x is None:
        return "no decision"
    levels = f"entry {price(x.entry)} tp {price(x.take_profit)} sl {price(x.stop_loss)}"
    return f"{x.action} {pct(x.weight)}, {levels}"


def day(as_of: datetime) -> str:
    """A run decides as of an instant; midnight UTC is the close of the day before."""
    if as_of.astimezone(UTC).time() == time(0):
        return f"{(as_of - timedelta(days=1)):%Y-%m-%d}"
    return f"{as_of:%Y-%m-%d %H:%M %Z}"


def pct(weight: Decimal) -> str:
    return f"{weight:.1%}"


def price(value: Decimal | None) -> str:
    """At least cents, more only where the price has them."""
    if value is None:
        return "-"
    exponent = value.normalize().as_tuple().exponent
    return f"{value:.{max(2, -exponent) if isinstance(exponent, int) else 2}f}"
