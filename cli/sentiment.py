"""`aitrader sentiment ...`: score the stored news and store symbol sentiment, or show it.

`run` is the `sentiment_analysis` flow here, in this process (under the Prefect
server of an `aitrader up` beside it, or a private one): without `--start` one
live run as of now; with it a backfill, a progress bar over its steps. `show`
prints each symbol's sentiment as of an instant, computed from the items known
by then, the way `GET /api/sentiment` answers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from cli.context import console, open_context, run_command
from cli.flow_progress import run_with_progress
from models.errors import InvalidInputError

app = typer.Typer(
    rich_markup_mode=None,
    help="News sentiment: score and store (live or backfill), show.",
    no_args_is_help=True,
)

DAY = ["%Y-%m-%d"]


@app.command("run")
@run_command
def run_cmd(
    start: Annotated[
        datetime | None, typer.Option(formats=DAY, help="Backfill from this day; unset: now.")
    ] = None,
    end: Annotated[
        datetime | None, typer.Option(formats=DAY, help="Backfill to this day; default today.")
    ] = None,
    step_hours: Annotated[
        float, typer.Option(min=0.25, max=168, help="A backfill's stored figure every N hours.")
    ] = 24.0,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated; default every symbol with news.")
    ] = None,
) -> None:
    """Score the news not scored yet and store each symbol's sentiment (now, or every
    --step-hours from --start to --end); says which scorer ran and why, if not the model."""
    from pydantic import ValidationError

    from models.jobs import SentimentJobParams

    ctx = open_context()
    ctx.require_schema()
    try:
        params = SentimentJobParams(
            symbols=[s.strip().upper() for s in symbols.split(",") if s.strip()]
            if symbols
            else None,
            start=start.date() if start else None,
            end=end.date() if end else None,
            step_hours=step_hours,
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = "/".join(f"--{str(p).replace('_', '-')}" for p in first["loc"]) or "--start/--end"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise InvalidInputError(where, message) from None
    with ctx.prefect():
        summary = _run(params.model_dump(exclude_none=True))
    if summary["scorer_note"]:
        console.print(f"[yellow]note:[/] {summary['scorer_note']}", soft_wrap=True)
    console.print(
        f"{summary['mode']} {summary['from'][:16]} .. {summary['to'][:16]}: "
        f"{summary['scored']} items scored by {summary['scorer']} ({summary['runtime']}), "
        f"{summary['stored']} figures stored over {summary['steps']} step(s)",
        soft_wrap=True,
        highlight=False,
    )
    _print_table(summary["latest"])


@app.command("show")
@run_command
def show_cmd(
    symbols: Annotated[
        str | None, typer.Argument(help="Comma-separated; default: with news.")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="An instant (ISO 8601; no offset means UTC); default now.")
    ] = None,
) -> None:
    """Each symbol's sentiment as of an instant, from the items known by then."""
    from datetime import timedelta

    from db.queries.sentiment import news_symbols_known
    from tasks.sentiment import sentiment_as_of, sentiment_params

    ctx = open_context()
    ctx.require_schema()
    instant = _instant(as_of) if as_of else datetime.now(UTC)
    params = sentiment_params(ctx.settings)
    with ctx.sessions() as session:
        names = (
            [s.strip().upper() for s in symbols.split(",") if s.strip()]
            if symbols
            else news_symbols_known(session, instant - timedelta(hours=params.window_h), instant)
        )
        report = sentiment_as_of(session, names, instant, params)
    console.print(
        f"as of {report.as_of.isoformat()}: {report.items} items, "
        f"scorer {report.scorer or 'none (no scored news)'}",
        soft_wrap=True,
        highlight=False,
    )
    _print_table([s.model_dump(mode="json") for s in report.symbols])


def _instant(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError("--as-of", f"{text!r} is not an ISO 8601 instant") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not rows:
        console.print("no symbol has scored news in the window")
        return
    table = Table("symbol", "score", "items", "dispersion", "change", "from", "to")
    for row in rows:
        table.add_row(
            row["symbol"],
            _num(row.get("score")),
            str(row.get("count", 0)),
            _num(row.get("dispersion"), signed=False),
            _num(row.get("change")),
            str(row.get("first_known_at") or "-")[:16],
            str(row.get("last_known_at") or "-")[:16],
        )
    console.print(table)


def _num(value: object, *, signed: bool = True) -> str:
    if not isinstance(value, float | int):
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def _run(params: dict[str, Any]) -> dict[str, Any]:
    from flows.sentiment import PROGRESS_LOGGER, sentiment_analysis

    return run_with_progress(
        lambda: sentiment_analysis(**params, return_state=True),
        PROGRESS_LOGGER,
        what="sentiment",
        unit="steps",
    )
