"""The `aitrader` command: settings and logging set up once, errors reported in one line.

Every command runs under `run_command`, the process edge: an `AITraderError`
or a database error becomes `error: <cause>` on stderr and exit code 1, with
no traceback (pass `--debug` for one).
"""

from __future__ import annotations

import typer

from cli import backtest, council, data, database, demo, serve, tokens, trading, up

app = typer.Typer(
    name="aitrader",
    help="AITrader: an LLM-driven trading backend.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(database.app, name="db")
app.add_typer(data.app, name="data")
app.add_typer(council.app, name="council")
app.add_typer(backtest.app, name="backtest")
app.add_typer(trading.app, name="trading")
app.add_typer(tokens.app, name="token")
council.app.command("execute")(trading.execute_cmd)
app.command("positions")(trading.positions_cmd)
app.command("orders")(trading.orders_cmd)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("up")(up.up)


if __name__ == "__main__":
    app()
