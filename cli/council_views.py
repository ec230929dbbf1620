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
    from tasks.council.stage_report import RunReport

COLUMNS = ("id", "symbol", "action", "weight", "entry", "take-profit", "stop-loss", "status")
ERROR_CHARS = 160  # of a stored error, in a line: `council audit` and the API have it whole


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
    if (run.params or {}).get("replay") and calls > cached:
        console.print(
            f"{calls - cached} not in cache: no model was asked, those members abstained",
            markup=False,
        )


def print_stages(report: RunReport) -> None:
    """Each stage in a line: how it ended, how many members answered, were repaired or
    abstained and why, what it passed on; under it, what it refused and why."""
    console.print("stages:")
    for s in report.stages:
        console.print(f"  {s.line}", markup=False, highlight=False)
        for note in s.notes:
            console.print(f"    {note}", markup=False, highlight=False)


def print_why_no_decision(report: RunReport) -> None:
    """How the run ended and each stage up to the one that passed nothing on, with what it
    refused; then every member that abstained on the way, with its cause and stored error."""
    console.print("why no decision:")
    by_line = {s.line: s for s in report.stages}
    shown = [by_line[line] for line in report.why_no_decision if line in by_line]
    for line in report.why_no_decision:
        console.print(f"  {line}", markup=False, highlight=False)
        for note in by_line[line].notes if line in by_line else ():
            console.print(f"    {note}", markup=False, highlight=False)
    absent = [(s.stage, m) for s in shown for m in s.members if m.cause is not None]
    if absent:
        console.print("  who abstained:")
    for stage, m in absent:
        error = " ".join((m.error or "").split())
        cut = error if len(error) <= ERROR_CHARS else error[: ERROR_CHARS - 3] + "..."
        console.print(
            f"    {stage}: {m.member} ({m.model}): {m.cause}{f': {cut}' if cut else ''}",
            markup=False,
            highlight=False,
        )


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
