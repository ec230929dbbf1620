"""`aitrader positions`, `aitrader orders`, `aitrader trading halt|resume|status`,
`aitrader council execute`: what the accounts hold, what was sent, and the kill switch.

The tables read our database (what the execution stage booked), not the
broker: they work with the broker down, and `trading status` says when the
last snapshot was taken so nobody mistakes it for a live quote.

Heavy imports (asyncio too: 70 ms) are inside the commands: their `--help` must
answer in 0.5 s.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cli.context import console, err_console, open_context, run_command
from cli.lazy import QuickHelpGroup
from models.enums import OrderStatus
from models.errors import AITraderError, NotFoundError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State
    from sqlalchemy.orm import Session

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="The kill switch: halt and resume trading.",
    no_args_is_help=True,
)

AccountOpt = Annotated[str | None, typer.Option(help="One configured account (default: all).")]


class ExecutionFailedError(AITraderError):
    """The execution flow ended without executing on every account."""


@run_command
def positions_cmd(account: AccountOpt = None) -> None:
    """Open positions by account, from the orders the execution stage booked."""
    ctx = open_context()
    ctx.require_schema()
    with ctx.sessions() as session:
        print_positions(session, _account_id(session, account))


@run_command
def orders_cmd(
    account: AccountOpt = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only orders still working.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    refused: Annotated[
        bool, typer.Option("--all", help="Also the trade intents a check or the broker refused.")
    ] = False,
) -> None:
    """Orders, newest first, bracket legs under their entry, refusals with their reason."""
    ctx = open_context()
    ctx.require_schema()
    with ctx.sessions() as session:
        print_orders(session, _account_id(session, account), open_only=open_only, limit=limit)
        if refused:
            print_refusals(session, account, limit=limit)
        else:
            print_refusal_count(session, account)


@app.command("halt")
@run_command
def halt_cmd(
    reason: Annotated[str, typer.Option(help="Why; shown with every order it stops.")],
    account: AccountOpt = None,
    by: Annotated[str | None, typer.Option(help="Who (default: your login).")] = None,
) -> None:
    """Stop sending orders, on one account or all, until `trading resume`."""
    from db.queries import halts

    ctx = open_context()
    ctx.require_schema()
    name = _configured(ctx.settings.accounts, account)
    with ctx.transaction() as session:
        halts.set_halt(session, name, True, by or getpass.getuser(), reason)
    console.print(f"trading halted for {name or 'all accounts'}: {reason}")


@app.command("resume")
@run_command
def resume_cmd(
    account: AccountOpt = None,
    by: Annotated[str | None, typer.Option(help="Who (default: your login).")] = None,
) -> None:
    """Allow orders again on one account, or lift the halt on all accounts."""
    from db.queries import halts

    ctx = open_context()
    ctx.require_schema()
    name = _configured(ctx.settings.accounts, account)
    with ctx.transaction() as session:
        halts.set_halt(session, name, False, by or getpass.getuser())
        still = halts.halted_reason(session, name) if name else None
    console.print(f"trading resumed for {name or 'all accounts'}")
    if still:
        err_console.print(f"but {still}", markup=False)


@app.command("status")
@run_command
def status_cmd() -> None:
    """Each configured account: broker, halted or not, and its last booked equity."""
    from db.queries import halts
    from db.queries import trading as q
    from db.queries.accounts import account_by_name

    ctx = open_context()
    ctx.require_schema()
    table = Table("account", "broker", "live", "allocation", "trading", "equity", "as of")
    with ctx.sessions() as session:
        for config in ctx.settings.accounts:
            row = account_by_name(session, config.name)
            snap = q.latest_snapshot(session, row.id) if row else None
            why = halts.halted_reason(session, config.name)
            table.add_row(
                config.name,
                str(config.broker),
                "yes" if config.live else "no",
                str(config.allocation),
                f"HALTED ({why})" if why else "on",
                _money(snap.equity) if snap else "-",
                f"{snap.ts:%Y-%m-%d %H:%M}" if snap else "-",
            )
    console.print(table)


@app.command("sync")
@run_command
def sync_cmd() -> None:
    """Book every account's new fills and bracket exits up to now, and snapshot it."""
    import asyncio

    ctx = open_context()
    ctx.require_schema()
    with ctx.prefect():
        state = asyncio.run(_sync())
    rows = state.result(raise_on_failure=False)
    for row in rows if isinstance(rows, list) else []:
        drift = f"; differs from the broker: {row['drift']}" if row.get("drift") else ""
        console.print(f"{row['account']}: {row.get('new_fills', 0)} new fills{drift}", markup=False)
    with ctx.sessions() as session:
        print_positions(session, None)
    if not state.is_completed():
        raise ExecutionFailedError(f"sync ended {state.name}: {state.message}")


async def _sync() -> State[Any]:
    from flows.execution import sync_accounts

    state: State[Any] = await sync_accounts(return_state=True)
    return state


@run_command
def execute_cmd(
    decision_ids: Annotated[list[int], typer.Argument(help="Approved council decision ids.")],
    now: Annotated[
        bool, typer.Option("--now", help="Trade at today's prices, not the council's as-of.")
    ] = False,
) -> None:
    """Execute decisions approved earlier on every configured account (exactly once)."""
    import asyncio

    ctx = open_context()
    ctx.require_schema()
    as_of = datetime.now().astimezone() if now else None
    with ctx.prefect():
        state = asyncio.run(_execute(decision_ids, as_of))
    rows = state.result(raise_on_failure=False)
    if isinstance(rows, list):
        print_lines(rows)
    with ctx.sessions() as session:
        print_positions(session, None)
    if not state.is_completed():
        raise ExecutionFailedError(f"execution ended {state.name}: {state.message}")


async def _execute(decision_ids: list[int], as_of: datetime | None) -> State[Any]:
    from flows.execution import execute_decisions

    state: State[Any] = await execute_decisions(decision_ids, as_of, return_state=True)
    return state


def print_lines(rows: list[dict[str, Any]]) -> None:
    """The execution stage's artifact rows: one per decision and account."""
    table = Table(title="orders sent")
    for name in ("account", "decision", "symbol", "side", "qty", "order", "status", "reason"):
        table.add_column(name, overflow="fold")
    for r in rows:
        table.add_row(
            str(r.get("account", "")),
            str(r.get("decision", "")),
            str(r.get("symbol", "")),
            str(r.get("side", "") or ""),
            _qty(r.get("qty")),
            str(r.get("order_status") or "-"),
            str(r.get("status", "")),
            str(r.get("reason") or ""),
        )
    console.print(table)


def print_execution(accounts: list[dict[str, Any]]) -> None:
    """What became of a decision on each account: verdict, orders, fills (`council audit`)."""
    if not accounts:
        console.print("not executed on any account")
        return
    for a in accounts:
        i = a["intent"]
        why = f": {i['reject_reason']}" if i["reject_reason"] else ""
        what = f"{i['side']} {_qty(i['qty'])} {i['symbol']}"
        console.print(
            f"account {a['account']}: {what}, {i['status']}{why}",
            markup=False,
            highlight=False,
        )
        for o in a["orders"]:
            console.print(
                f"  order {o['id']} {o['leg']} {o['client_order_id']}: {o['status']}",
                markup=False,
            )
        for f in a["fills"]:
            console.print(
                f"  fill {f['broker_fill_id']}: {_qty(f['qty'])} @ {_money(f['price'])} "
                f"at {f['ts']:%Y-%m-%d %H:%M}",
                markup=False,
            )


def print_positions(session: Session, account_id: int | None) -> None:
    from db.queries import trading as q

    names = q.account_names(session)
    table = Table("account", "symbol", "qty", "avg cost", "realised P&L", title="positions")
    rows = q.positions(session, account_id)
    for p in rows:
        table.add_row(
            names.get(p.account_id, str(p.account_id)),
            p.symbol,
            _qty(p.qty),
            _money(p.avg_price),
            _money(p.realized_pnl),
        )
    console.print(table if rows else "no open positions")


def print_orders(
    session: Session, account_id: int | None, *, open_only: bool = False, limit: int = 50
) -> None:
    from db.queries import trading as q

    names = q.account_names(session)
    working = {OrderStatus.PENDING_SUBMIT, OrderStatus.NEW, OrderStatus.ACCEPTED}
    status = working | {OrderStatus.SUBMITTED, OrderStatus.PARTIALLY_FILLED} if open_only else None
    rows = q.orders(session, account_id, status, limit)
    table = Table(title="orders")
    for name in ("id", "account", "symbol", "leg", "side", "qty", "type", "status", "filled"):
        table.add_column(name, overflow="fold")
    for o in rows:
        price = o.limit_price or o.stop_price
        table.add_row(
            str(o.id),
            names.get(o.account_id, str(o.account_id)),
            o.symbol,
            str(o.leg),
            str(o.side),
            _qty(o.qty),
            f"{o.order_type} {_money(price)}" if price else str(o.order_type),
            str(o.status) + (f": {o.reject_reason}" if o.reject_reason else ""),
            f"{_qty(o.filled_qty)} @ {_money(o.avg_fill_price)}" if o.avg_fill_price else "-",
        )
    console.print(table if rows else "no orders")


def print_refusals(session: Session, account: str | None, *, limit: int = 50) -> None:
    """Intents a pre-trade check (or the broker) refused, newest first: the check that
    failed and its detail with the numbers it compared. A check's refusal never becomes
    an order, so the orders table cannot show it."""
    from db.queries import trading as q

    rows = q.list_refused_intents(session, q.Paging(limit=limit), account=account)
    if not rows:
        console.print("no refused intents")
        return
    table = Table(title="refused intents")
    for name in ("id", "account", "symbol", "side", "qty", "check", "reason"):
        table.add_column(name, overflow="fold")
    for line in rows:
        i = line.intent
        table.add_row(
            str(i.id),
            line.account,
            i.symbol,
            str(i.side),
            _qty(i.qty),
            ", ".join(line.checks) or "-",
            Text(line.reason or "-"),  # the broker's words may hold [brackets]: not markup
        )
    console.print(table)


def print_refusal_count(session: Session, account: str | None) -> None:
    """One line pointing at `--all`, only when there is something to see there."""
    from db.queries import trading as q

    count = q.count_refused_intents(session, account)
    if count:
        what = "trade intent was" if count == 1 else "trade intents were"
        console.print(
            f"{count} {what} refused: `aitrader orders --all` shows them and why",
            markup=False,
            soft_wrap=True,
        )


def _account_id(session: Session, name: str | None) -> int | None:
    from db.queries.accounts import account_by_name

    if name is None:
        return None
    row = account_by_name(session, name)
    if row is None:
        raise NotFoundError(f"account {name!r} has not traded yet (or is not configured)")
    return row.id


def _configured(accounts: list[Any], name: str | None) -> str | None:
    if name is not None and name not in {a.name for a in accounts}:
        known = ", ".join(a.name for a in accounts)
        raise NotFoundError(f"no account {name!r} is configured (ACCOUNTS has: {known})")
    return name


def _money(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _qty(value: object) -> str:
    if value is None or value == "":
        return "-"
    return f"{Decimal(str(value)).normalize():f}"
