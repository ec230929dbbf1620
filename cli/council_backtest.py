"""`aitrader council backtest`: sit the council at every rebalance day of a past range, here,
and print it beside buy-and-hold and momentum.

The council-backtest flow runs in this process, as `council run` runs the weekly council
(Prefect's ephemeral mode, or the server at `PREFECT_API_URL`). What can be refused
without asking a model is refused before Prefect starts: an end not after the start (a
usage error), symbols with no daily bars, days outside the stored bars, an unknown
account. The table is read back from the backtest's row, not from Prefect's results.

Exit codes: 0 done; 1 an error (one line on stderr); 2 a usage error; 3 stopped on its
LLM budget (what was asked is cached: a rerun with a larger budget pays only for the rest).

Prefect, the flow and the queries are imported inside the command: `aitrader --help` and
`aitrader council --help` must not load them (docs/decisions/0015).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from cli.context import console, err_console, open_context, quiet_prefect, run_command
from cli.council_views import day
from cli.flow_progress import FlowFailedError
from models.enums import Timeframe
from models.errors import AITraderError, NotFoundError, describe_failure

if TYPE_CHECKING:
    from prefect.client.schemas.objects import State
    from sqlalchemy.orm import Session

    from cli.context import CommandContext
    from models.track_record import CouncilBacktest

BUDGET_STOPPED = 3  # as `council run`
DAY = ["%Y-%m-%d"]
BOOKS = (
    ("council", "council"),
    ("council_anon", "anonymised"),
    ("buy_and_hold", "buy and hold"),
    ("momentum", "momentum"),
)
SHOWN = ("total_return", "cagr", "sharpe", "max_drawdown")


class Rebalance(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class CutoffPolicy(StrEnum):
    FLAG = "flag"
    REFUSE = "refuse"


@run_command
def backtest_cmd(
    start: Annotated[datetime, typer.Option(formats=DAY, help="First day a sitting may fall on.")],
    end: Annotated[datetime, typer.Option(formats=DAY, help="Last day a sitting may fall on.")],
    universe: Annotated[
        str | None, typer.Option(help="Symbols, comma-separated (default: every stored one).")
    ] = None,
    models: Annotated[
        str | None, typer.Option(help="litellm models, comma-separated (default: LLM_MODELS).")
    ] = None,
    rebalance: Annotated[
        Rebalance, typer.Option(help="Sit on the last stored day of each week or month.")
    ] = Rebalance.WEEKLY,
    budget: Annotated[
        float | None, typer.Option(min=0, help="LLM budget of the whole backtest, in USD.")
    ] = None,
    account: Annotated[
        str | None, typer.Option(help="Size orders as this account (default: the first).")
    ] = None,
    replay: Annotated[
        bool, typer.Option("--replay", help="Answer from the LLM cache alone; spend nothing.")
    ] = False,
    anonymise: Annotated[
        bool,
        typer.Option(
            "--anonymise", help="Sit each day again with aliases and rescaled prices; compare."
        ),
    ] = False,
    weighting: Annotated[
        bool | None,
        typer.Option(
            "--weighting/--no-weighting",
            help="Rank pitches by skill-weighted reviews (default: COUNCIL_VOTE_WEIGHTING).",
        ),
    ] = None,
    cutoff_policy: Annotated[
        CutoffPolicy | None,
        typer.Option(help="A sitting before a member's training cutoff: flag or refuse it."),
    ] = None,
    max_positions: Annotated[
        int | None, typer.Option(min=1, help="Most decisions a sitting may make.")
    ] = None,
    max_weight: Annotated[
        float | None, typer.Option(min=0, max=1, help="Largest target weight.")
    ] = None,
) -> None:
    """Backtest the council over a past range and print it beside buy-and-hold and momentum
    (exit 3: stopped on its budget)."""
    if end.date() <= start.date():
        raise typer.BadParameter(
            f"{end.date()} is not after --start {start.date()}", param_hint="'--end'"
        )
    params: dict[str, Any] = {
        "start": start.date(),
        "end": end.date(),
        "universe": _split(universe, upper=True),
        "models": _split(models),
        "rebalance": str(rebalance),
        "budget_usd": budget,
        "account": account,
        "cutoff_policy": str(cutoff_policy) if cutoff_policy else None,
        "replay": replay,
        "anonymise": anonymise,
        "weighting": weighting,
        "max_positions": max_positions,
        "max_weight": max_weight,
    }
    params = {k: v for k, v in params.items() if v is not None}
    ctx = open_context()
    ctx.require_schema()
    _refuse_before_running(ctx, params)
    quiet_prefect()
    with ctx.prefect():
        state, summary = _judge(params)
    if state.is_cancelled():
        err_console.print(f"council backtest cancelled: {state.message}", markup=False)
        raise typer.Exit(code=BUDGET_STOPPED)
    if not state.is_completed() or not isinstance(summary, dict):
        failure = state.result(raise_on_failure=False)
        if isinstance(failure, AITraderError):
            raise failure
        cause = (
            describe_failure(failure)
            if isinstance(failure, BaseException)
            else state.message or state.name
        )
        raise FlowFailedError(f"the council backtest's flow run ended {state.name}: {cause}")
    from db.queries import track_record as tr

    with ctx.transaction() as session:
        row = tr.get_council_backtest(session, int(summary["council_backtest_id"]))
        _print_backtest(session, row)
    if plot := summary.get("plot"):
        console.print(f"equity plot: {plot}", highlight=False, soft_wrap=True)


def _refuse_before_running(ctx: CommandContext, params: dict[str, Any]) -> None:
    """What the flow would refuse at once, refused here before Prefect starts (seconds)."""
    from db.queries.bar_coverage import bar_coverage
    from tasks.council.week import council_day

    symbols = params.get("universe")
    with ctx.transaction() as session:
        if symbols:
            stored = {c.symbol for c in bar_coverage(session, symbols, Timeframe.D1)}
            if missing := [s for s in symbols if s not in stored]:
                raise NotFoundError(
                    f"no daily bars for {', '.join(missing)}: see `aitrader data list`"
                )
        council_day(session, params["start"], symbols, field="--start")
        council_day(session, params["end"], symbols, field="--end")
    if account := params.get("account"):
        ctx.settings.account(account)  # ConfigurationError naming the configured ones


def _judge(params: dict[str, Any]) -> tuple[State[Any], Any]:
    """The flow run's final state and, if it completed, its summary."""
    import asyncio

    from flows.council_backtest import council_backtest

    async def run() -> tuple[State[Any], Any]:
        state: State[Any] = await council_backtest(**params, return_state=True)
        summary = await state.aresult(raise_on_failure=False) if state.is_completed() else None
        return state, summary

    return asyncio.run(run())


def _print_backtest(session: Session, row: CouncilBacktest) -> None:
    """The books side by side, then what the sittings cost, then what to be wary of."""
    from db.queries import track_record as tr
    from tasks.backtest.metrics import metric_text  # numpy: loaded by the flow already

    metrics = row.metrics or {}
    table = Table(title=f"council backtest {row.id}: {day(row.start)} to {day(row.end)}")
    table.add_column("metric")
    books = [(b, label) for b, label in BOOKS if b in metrics]
    for _, label in books:
        table.add_column(label, justify="right")
    for name in SHOWN:
        table.add_row(name, *(metric_text(name, metrics[b].get(name)) for b, _ in books))
    table.add_row("trades (closed + open)", *(_trades(metrics[b]) for b, _ in books))
    console.print(table)
    sittings = tr.sittings_of(session, row.id)
    failed = sum(1 for s in sittings if s.status != "completed")
    rebalance = (row.params or {}).get("rebalance", "")
    console.print(
        f"{row.sittings_done} of {row.sittings} {rebalance} sittings"
        + (f" ({failed} did not complete)" if failed else "")
        + f"; LLM cost ${row.cost_usd.quantize(Decimal('0.000001'))}: {row.requests} "
        f"requests, {row.cache_hits} answered from the cache",
        highlight=False,
        soft_wrap=True,
    )
    cutoff = (row.report or {}).get("cutoff") or {}
    if flagged := cutoff.get("flagged_sittings"):
        console.print(
            f"warning: {flagged} of {cutoff.get('sittings')} sittings seat a model whose "
            "training cutoff is after their as_of: it may know what happened next. The "
            f"council before and after the cutoff: GET /api/council/backtests/{row.id}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def _trades(metrics: dict[str, Any]) -> str:
    if "trades" not in metrics:
        return ""
    return f"{int(metrics['trades']):,} + {int(metrics.get('open_trades', 0)):,}"


def _split(value: str | None, *, upper: bool = False) -> list[str] | None:
    items = [s.strip() for s in (value or "").split(",") if s.strip()]
    return [s.upper() if upper else s for s in items] or None
