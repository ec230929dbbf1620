"""`aitrader token ...`: API tokens for the REST API, shown once, stored hashed.

Roles: viewer (reads), trader (also moves money and spends on models),
admin (also halts trading and reads the audit log).

Heavy imports are inside the commands: `aitrader token --help` must answer in 0.5 s.
"""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Annotated

import typer
from rich.table import Table

from cli.context import console, open_context, run_command
from cli.lazy import QuickHelpGroup
from models.enums import Role

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="API tokens: create, list, revoke.",
    no_args_is_help=True,
)


@app.command("create")
@run_command
def create_cmd(
    role: Annotated[Role, typer.Option(help="viewer, trader or admin.")] = Role.VIEWER,
    user: Annotated[str | None, typer.Option(help="Whose token (default: your login).")] = None,
    name: Annotated[str, typer.Option(help="A label to tell tokens apart.")] = "",
    expires_days: Annotated[
        int | None, typer.Option(min=1, max=3650, help="Expire after this many days.")
    ] = None,
) -> None:
    """Create a token and print it once: it is stored only as a hash."""
    from db.queries.audit import record_event
    from db.queries.tokens import issue_token
    from models.base import utcnow

    ctx = open_context()
    ctx.require_schema()
    owner = user or _login()
    expires = utcnow() + timedelta(days=expires_days) if expires_days else None
    with ctx.transaction() as session:
        issued = issue_token(session, owner, role, name=name, expires_at=expires)
        record_event(
            session,
            actor=_login(),
            event="token.created",
            entity_type="api_token",
            entity_id=issued.id,
            after={"user": owner, "role": str(role), "expires_at": str(expires or "")},
        )
    console.print(issued.secret, markup=False, highlight=False, soft_wrap=True)
    err = typer.echo
    err(f"token {issued.id} for {owner}, role {role}: shown once, keep it safe", err=True)


@app.command("list")
@run_command
def list_cmd() -> None:
    """Every token: id, owner, role, prefix, last use, and whether it still works."""
    from db.queries.tokens import list_tokens
    from models.base import utcnow

    ctx = open_context()
    ctx.require_schema()
    table = Table("id", "user", "role", "name", "prefix", "last used", "state", show_edge=False)
    now = utcnow()
    with ctx.transaction() as session:
        for token, owner in list_tokens(session):
            if token.revoked_at is not None:
                state = "revoked"
            elif token.expires_at is not None and token.expires_at <= now:
                state = "expired"
            else:
                state = "active"
            used = f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "-"
            table.add_row(
                str(token.id),
                owner.username,
                str(token.role),
                token.name,
                token.prefix,
                used,
                state,
            )
    console.print(table)


@app.command("revoke")
@run_command
def revoke_cmd(token_id: Annotated[int, typer.Argument(help="The token's id.")]) -> None:
    """Revoke a token; requests with it are refused (401) from now on."""
    from db.queries.audit import record_event
    from db.queries.tokens import revoke_token

    ctx = open_context()
    ctx.require_schema()
    with ctx.transaction() as session:
        token = revoke_token(session, token_id)
        record_event(
            session,
            actor=_login(),
            event="token.revoked",
            entity_type="api_token",
            entity_id=token.id,
        )
    console.print(f"token {token_id} revoked")


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment (some containers)
        return "cli"
