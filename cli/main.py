"""The `aitrader` command: settings and logging set up once, errors reported in one line.

Every command runs under `run_command`, the process edge: an `AITraderError`
or a database error becomes `error: <cause>` on stderr and exit code 1, with
no traceback (pass `--debug` for one).

Commands are imported when they run (`cli/lazy.py`): `aitrader --help` loads
typer and this table, not the API, Prefect or litellm.
"""

from __future__ import annotations

import typer

from cli.lazy import LazyCommand, LazyGroup


class Commands(LazyGroup):
    lazy = {
        "db": LazyCommand("cli.database", "app", "Database schema: upgrade, current, check."),
        "data": LazyCommand("cli.data", "app", "Market data: import, instruments, news, list."),
        "council": LazyCommand(
            "cli.council",
            "app",
            "The weekly council: run, replay, backtest, approve, show, audit, roster.",
        ),
        "backtest": LazyCommand(
            "cli.backtest", "app", "Backtests: single runs, parameter sweeps, walk-forward."
        ),
        "sentiment": LazyCommand(
            "cli.sentiment", "app", "News sentiment: score and store (live or backfill), show."
        ),
        "trading": LazyCommand("cli.trading", "app", "The kill switch: halt and resume trading."),
        "accounts": LazyCommand(
            "cli.accounts", "app", "Paper accounts: start one afresh, the old one kept."
        ),
        "token": LazyCommand("cli.tokens", "app", "API tokens: create, list, revoke."),
        "positions": LazyCommand(
            "cli.trading",
            "positions_cmd",
            "Open positions by account, from the orders the execution stage booked.",
        ),
        "orders": LazyCommand(
            "cli.trading",
            "orders_cmd",
            "Orders, newest first, bracket legs under their entry, refusals with their reason.",
        ),
        "demo": LazyCommand(
            "cli.demo",
            "demo",
            "Migrate, import the bundled sample, print a summary, and run the council on it.",
        ),
        "serve": LazyCommand(
            "cli.serve", "serve", "Serve the REST API, the SSE price stream and the WebSocket feed."
        ),
        "up": LazyCommand(
            "cli.up",
            "up",
            "Start Prefect, the scheduled flows and the realtime server; Ctrl-C stops all.",
        ),
    }


app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    name="aitrader",
    cls=Commands,
    help="AITrader: an LLM-driven trading backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def main() -> None:
    """AITrader: an LLM-driven trading backend."""


def run() -> None:
    """The console entry: a usage error is one line, like every other refusal.

    Click would print a usage block (typer: a boxed panel) before the reason;
    `aitrader council run --as-of 2020-13-01` now answers
    `error: Invalid value for '--as-of': ...` and exit code 2. Help pages, and
    `aitrader` alone, print as before.
    """
    import sys

    # typer vendors click (0.29): its exceptions, not the click package's, are raised here
    from typer._click import exceptions as click

    try:
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        sys.stderr.write(f"error: {_one_line(exc.format_message())}{where}\n")
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        sys.stderr.write(f"error: {_one_line(exc.format_message())}\n")
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    """pydantic's coercion messages carry "Value error, " and may wrap: neither helps."""
    return " ".join(message.replace("Value error, ", "").split())


if __name__ == "__main__":
    run()
