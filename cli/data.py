"""`aitrader data ...`: import bars, instruments and news (files, Alpaca), list what is stored.

Heavy imports (rich.progress too) are inside the functions: `aitrader data --help`
must answer in 0.5 s.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from cli.context import console, open_context, run_command
from cli.lazy import QuickHelpGroup
from models.enums import ConflictRule, Timeframe
from models.errors import InvalidInputError
from services.vendors.news_file import NEWS_SUFFIXES
from services.vendors.paths import BAR_SUFFIXES, require_file

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from models.market import ImportReport
    from tasks.import_news import NewsImportReport

app = typer.Typer(
    rich_markup_mode=None,  # plain help: see cli/__init__.py
    cls=QuickHelpGroup,
    help="Market data: import, instruments, news, list.",
    no_args_is_help=True,
)


@app.command("import")
@run_command
def import_cmd(
    path: Path = typer.Argument(..., help="CSV, CSV.GZ or Parquet file of bars."),
    timeframe: Timeframe = typer.Option(Timeframe.D1, "--timeframe", "-t"),
    symbol_column: str = typer.Option("symbol", help="Column holding the symbol."),
    symbol: str | None = typer.Option(None, help="Symbol of a file with no symbol column."),
    tz: str = typer.Option("UTC", help="Timezone of naive timestamps in the file."),
    on_conflict: ConflictRule = typer.Option(
        ConflictRule.REJECT, help="Duplicates that disagree: reject all copies, or keep first/last."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
) -> None:
    """Import bars; every row is validated, rejects are counted with reasons and examples.

    Rows are merged a few symbols at a time, each batch its own short transaction, so a
    running server and jobs keep writing meanwhile; a symbol lands whole or not at all,
    and re-running an interrupted import finishes it.
    """
    require_file(path, BAR_SUFFIXES)  # before settings, the database and pandas load
    from tasks.import_bars import import_bar_file_beside_writers

    ctx = open_context()
    ctx.require_schema()
    with _progress() as bar:
        tasks: dict[str, TaskID] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = import_bar_file_beside_writers(
            ctx.engine,
            path,
            timeframe=timeframe,
            symbol_column=symbol_column,
            symbol=symbol,
            tz=tz,
            on_conflict=on_conflict,
            dry_run=dry_run,
            progress=step,
        )
        for task in tasks.values():
            bar.update(task, completed=bar.tasks[task].total)
    print_report(report, dry_run=dry_run)


@app.command("instruments")
@run_command
def instruments_cmd(
    path: Path = typer.Argument(
        ..., help="CSV with a symbol column and any of name, exchange, sector."
    ),
) -> None:
    """Load instrument reference data, such as sectors."""
    require_file(path)
    from tasks.import_instruments import import_instrument_file

    ctx = open_context()
    ctx.require_schema()
    with ctx.transaction() as session:
        counts = import_instrument_file(session, path)
    console.print(
        f"instruments from {path}: {counts.created} created, {counts.updated} updated, "
        f"{counts.unchanged} unchanged"
    )


@app.command("news")
@run_command
def news_cmd(
    path: Path = typer.Argument(..., help="JSONL or CSV (optionally .gz) of news items."),
    source: str = typer.Option("file", help="Source name of items that do not name one."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
) -> None:
    """Import a news archive; items are validated, stored once, refusals listed with reasons.

    An item is known from its received_at, or from published_at when the archive has no
    received_at (the stored row says which). Symbols must be instruments already.
    """
    require_file(path, NEWS_SUFFIXES, kinds=".jsonl, .ndjson or .csv, each optionally .gz")
    from tasks.import_news import import_news_file

    ctx = open_context()
    ctx.require_schema()
    with ctx.transaction() as session:
        report = import_news_file(session, path, source=source, dry_run=dry_run)
    _print_news_report(report, dry_run=dry_run)


@app.command("news-alpaca")
@run_command
def news_alpaca_cmd(
    start: str = typer.Option(
        ..., metavar="DATE", help="First day (2024-01-01) or moment (ISO 8601; UTC if naive)."
    ),
    end: str = typer.Option(
        ..., metavar="DATE", help="Last day, included whole, or moment (ISO 8601)."
    ),
    symbols: str | None = typer.Option(
        None, help="Only news naming these, comma-separated (AAPL,MSFT); default: all."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and report; write nothing."),
) -> None:
    """Import Alpaca's news archive (ALPACA_API_KEY, ALPACA_SECRET_KEY; ALPACA_DATA_URL).

    The same rules as a file: items are validated, stored once, refusals listed with
    Alpaca's id and the reason (an item naming a symbol that is not an instrument is
    refused whole). Items are known from their published time: an archive cannot say
    when it would have reached us.
    """
    first, last = _moment(start, "--start"), _moment(end, "--end", end_of_day=True)
    if last < first:
        raise InvalidInputError("--end", f"{end} is before --start {start}")
    from services.vendors.alpaca_news import fetch_news
    from tasks.import_news import import_news_rows

    ctx = open_context()
    ctx.require_schema()
    wanted = [s for s in (symbols or "").split(",") if s.strip()]
    rows = fetch_news(ctx.settings, first, last, wanted or None)  # before the transaction
    origin = f"alpaca {start}..{end}" + (f" ({','.join(wanted).upper()})" if wanted else "")
    with ctx.transaction() as session:
        report = import_news_rows(
            session,
            ((int(row["source_id"]), row) for row in rows),  # Alpaca's ids name the items
            origin,
            dry_run=dry_run,
            unit="alpaca id",
        )
    _print_news_report(report, dry_run=dry_run)


@app.command("list")
@run_command
def list_cmd(
    symbol: list[str] = typer.Option([], "--symbol", "-s", help="Only these symbols."),
    timeframe: Timeframe | None = typer.Option(None, "--timeframe", "-t"),
) -> None:
    """Symbols with their first and last bar and bar count."""
    from db.queries.bar_coverage import bar_coverage

    ctx = open_context()
    ctx.require_schema()
    with ctx.transaction() as session:
        rows = bar_coverage(session, symbol or None, timeframe)
    table = Table("symbol", "timeframe", "first", "last", "bars", title=f"{len(rows)} series")
    for r in rows:
        fmt = "%Y-%m-%d" if r.timeframe is Timeframe.D1 else "%Y-%m-%d %H:%M"
        table.add_row(
            r.symbol, r.timeframe, r.first.strftime(fmt), r.last.strftime(fmt), f"{r.bars:,}"
        )
    console.print(table)


def print_report(report: ImportReport, *, dry_run: bool = False) -> None:
    """The import receipt a person reads: totals, rejects by reason, first examples."""
    console.print(
        f"[bold]{report.path}[/] ({report.timeframe}): {report.rows_read:,} rows read, "
        f"{report.rows_valid:,} valid, {report.rows_rejected:,} rejected, "
        f"{report.duplicates_collapsed:,} identical duplicates collapsed, "
        f"{report.symbols:,} symbols, {report.seconds:.1f} s"
    )
    if report.rejected:
        table = Table("reason", "rows", title="rejected rows")
        for reason, n in sorted(report.rejected.items(), key=lambda kv: -kv[1]):
            table.add_row(reason, f"{n:,}")
        console.print(table)
        examples = Table("line", "symbol", "ts", "reason", title="first rejected rows")
        for ex in report.examples:
            examples.add_row(str(ex.line), ex.symbol or "", ex.ts or "", ex.reason)
        console.print(examples)
    if dry_run:
        console.print("dry run: nothing written")
        return
    console.print(
        f"changes: {report.changes:,} ({report.inserted:,} bars inserted, {report.updated:,} "
        f"updated, {report.instruments_created:,} instruments created); "
        f"{report.unchanged:,} bars unchanged"
    )


def _print_news_report(report: NewsImportReport, *, dry_run: bool) -> None:
    written = f"{report.new} new (dry run: none written)" if dry_run else f"{report.inserted} new"
    console.print(
        f"news from {report.path}: {report.read} read, {written}, "
        f"{report.unchanged} unchanged, {report.rejected} rejected"
        + (f"; {report.from_published} known from published_at" if report.from_published else "")
        + (
            f"; {report.partly_joined} also naming symbols that are not instruments "
            "(joined to the instruments only)"
            if report.partly_joined
            else ""
        ),
        soft_wrap=True,  # one line per fact: scripts grep it
        highlight=False,
    )
    for reason in report.reasons:
        console.print(f"  rejected {reason}", highlight=False, soft_wrap=True)
    if report.rejected > len(report.reasons):
        console.print(f"  ... and {report.rejected - len(report.reasons)} more", highlight=False)


def _moment(text: str, option: str, *, end_of_day: bool = False) -> datetime:
    """A day (its start, or with `end_of_day` its last microsecond) or an ISO 8601 moment,
    aware UTC; a moment without an offset is UTC."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date (2024-01-31) or ISO 8601 time", param_hint=option
        ) from None
    if len(text.strip()) == 10 and end_of_day:  # a bare day: all of it
        value = datetime.combine(value.date(), time.max)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _progress() -> Progress:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.completed:>9,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
