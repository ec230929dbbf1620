"""`aitrader accounts reset`: a paper account started afresh, the old one kept.

Heavy imports are inside the command: its `--help` must answer in 0.5 s.
"""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from cli.context import console, open_context, run_command
from cli.lazy import QuickHelpGroup
from models.errors import NotFoundError

if TYPE_CHECKING:
    from cli.context import CommandContext
    from models.accounts import AccountConfig
    from tasks.execution.paper_reset import PaperReset

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="Paper accounts: start one afresh, the old one kept.",
    no_args_is_help=True,
)


@app.command("reset")
@run_command
def reset_cmd(
    account: Annotated[
        str | None, typer.Option(help="One configured paper account (default: every one).")
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Do it; without it, say what would be.")] = (
        False
    ),
) -> None:
    """Retire a paper account and start it afresh with its starting cash.

    Its orders, fills and positions stay, on the retired account `NAME@STAMP`;
    the broker state file moves beside it. Live accounts are never touched.
    """
    ctx = open_context()
    ctx.require_schema()
    names = [a.name for a in paper_accounts(ctx, account)]
    if not yes:
        console.print(f"would reset {', '.join(names)}: run again with --yes")
        return
    for done in reset_paper_accounts(ctx, account):
        console.print(done.describe(), markup=False)


def paper_accounts(ctx: CommandContext, name: str | None) -> list[AccountConfig]:
    from models.enums import BrokerKind

    accounts = [a for a in ctx.settings.accounts if a.broker is BrokerKind.PAPER and not a.live]
    if name is not None:
        accounts = [a for a in accounts if a.name == name]
        if not accounts:
            known = ", ".join(a.name for a in ctx.settings.accounts) or "none"
            raise NotFoundError(f"no paper account named {name!r} is configured (have: {known})")
    return accounts


def reset_paper_accounts(ctx: CommandContext, name: str | None = None) -> list[PaperReset]:
    """Reset the configured paper accounts (or the one named); what each reset did."""
    import asyncio

    from models.base import utcnow
    from tasks.execution.paper_reset import reset_paper_account

    async def run() -> list[PaperReset]:
        now = utcnow()
        return [
            await reset_paper_account(ctx.sessions, ctx.settings, a, getpass.getuser(), now)
            for a in paper_accounts(ctx, name)
        ]

    return asyncio.run(run())
