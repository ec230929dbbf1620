"""`aitrader demo`: the product on the embedded defaults, from an empty machine.

Migrate the configured database, import the bundled sample and its sectors,
summarise what is stored, then sit the weekly council for the sample's last
week (the offline analyst unless LLM_MODELS says otherwise, approval auto)
and print its decisions. `make demo` then starts the stack (`aitrader up`).
The approved decisions are executed on the configured accounts (the paper
broker by default); the demo prints the orders and positions that resulted.
Each run first starts the paper accounts afresh (`--keep-accounts` not to):
the previous ones are kept, renamed, so a second run trades as the first did
instead of finding its cash spent.

Heavy imports are inside the command: `aitrader demo --help` must answer in 0.5 s.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cli.accounts import reset_paper_accounts
from cli.context import console, open_context, run_command
from cli.council import sit_offline_week
from cli.data import print_report
from cli.trading import print_orders, print_positions
from models.enums import Timeframe

SAMPLE_BARS = "sp500_daily_sample.csv.gz"
SAMPLE_SECTORS = "sp500_sectors_sample.csv"


@run_command
def demo(
    sample_dir: Path | None = typer.Option(None, help="Folder with the sample files."),
    council: bool = typer.Option(True, help="Sit the weekly council on the sample's last week."),
    fresh: bool = typer.Option(
        True,
        "--fresh-accounts/--keep-accounts",
        help="Start the paper accounts afresh before the council (the old ones are kept, "
        "renamed NAME@STAMP), so every run trades; `aitrader accounts reset` does it alone.",
    ),
) -> None:
    """Migrate, import the bundled sample, print a summary, and run the council on it."""
    from db.migrate import upgrade
    from db.queries.accounts import account_by_name
    from db.queries.bar_coverage import bar_coverage
    from db.queries.bars import bars_as_of
    from tasks.import_bars import import_bar_file
    from tasks.import_instruments import import_instrument_file

    ctx = open_context()
    folder = sample_dir or ctx.settings.sample_data_dir
    console.rule("AITrader demo")
    console.print(f"database: {ctx.engine.url.render_as_string(hide_password=True)}")
    upgrade(ctx.engine)
    with ctx.transaction() as session:
        counts = import_instrument_file(session, folder / SAMPLE_SECTORS)
        console.print(f"instruments: {counts.created} created, {counts.updated} updated")
        report = import_bar_file(session, folder / SAMPLE_BARS, timeframe=Timeframe.D1)
    print_report(report)
    with ctx.transaction() as session:
        coverage = bar_coverage(session, timeframe=Timeframe.D1)
        last = max(c.last for c in coverage)
        symbols = [c.symbol for c in coverage]
        recent = bars_as_of(session, symbols, last.date(), lookback=21)
    table = Table("symbol", "first", "last", "bars", "close", "21-bar return", title="summary")
    by_symbol: dict[str, list[float]] = {}
    for b in recent:
        by_symbol.setdefault(b.symbol, []).append(float(b.close))
    for c in coverage:
        closes = by_symbol.get(c.symbol, [])
        ret = f"{closes[-1] / closes[0] - 1:+.1%}" if len(closes) > 1 else "-"
        close = f"{closes[-1]:.2f}" if closes else "-"
        table.add_row(
            c.symbol, f"{c.first:%Y-%m-%d}", f"{c.last:%Y-%m-%d}", f"{c.bars:,}", close, ret
        )
    console.print(table)
    console.print(
        f"{len(coverage)} symbols, {sum(c.bars for c in coverage):,} daily bars, "
        f"as of {last:%Y-%m-%d}. Next: `aitrader data list`, `aitrader data import PATH`, "
        "`aitrader backtest run --strategy sma_cross --symbols AAPL,MSFT "
        "--start 2016-01-01 --end 2019-12-31` (metrics table and equity plot)."
    )
    if council:
        console.rule(f"weekly council as of {last:%Y-%m-%d}")
        if fresh:
            for done in reset_paper_accounts(ctx):
                console.print(done.describe(), markup=False)
        run_id = sit_offline_week(last.date())
        with ctx.sessions() as session:  # the configured accounts: not the ones reset before
            for account in ctx.settings.accounts:
                if (row := account_by_name(session, account.name)) is not None:
                    print_orders(session, row.id)
                    print_positions(session, row.id)
        console.print(
            f"Next: `aitrader council audit DECISION_ID`, `aitrader council show {run_id}`, "
            "`aitrader positions`, `aitrader orders`, "
            "`aitrader up` (Prefect UI with the run's artifacts, and the realtime server)."
        )
