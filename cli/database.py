"""`aitrader db ...`: migrate and inspect the schema.

Alembic and the models are imported inside the commands: `aitrader db --help`
must answer in 0.5 s.
"""

from __future__ import annotations

import typer

from cli.context import console, open_context, run_command
from cli.lazy import QuickHelpGroup

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="Database schema: upgrade, current, check.",
    no_args_is_help=True,
)


@app.command("upgrade")
@run_command
def upgrade_cmd(revision: str = typer.Option("head", help="Target revision.")) -> None:
    """Bring the database to the newest schema (safe to run again)."""
    from db.migrate import current_revision, upgrade

    ctx = open_context()
    before = current_revision(ctx.engine)
    upgrade(ctx.engine, revision)
    after = current_revision(ctx.engine)
    where = ctx.engine.url.render_as_string(hide_password=True)
    console.print(f"database {where}: {before or 'empty'} -> {after}")


@app.command("current")
@run_command
def current_cmd() -> None:
    """Show the database's revision and the code's head."""
    from db.migrate import current_revision, head_revision

    ctx = open_context()
    console.print(
        f"current: {current_revision(ctx.engine) or 'none'}  head: {head_revision(ctx.engine)}"
    )


@app.command("check")
@run_command
def check_cmd() -> None:
    """Exit 1 if the database schema differs from the models."""
    from db.migrate import schema_drift

    ctx = open_context()
    drift = schema_drift(ctx.engine)
    for item in drift:
        console.print(f"drift: {item}")
    if drift:
        raise typer.Exit(code=1)
    console.print("schema matches the models")
